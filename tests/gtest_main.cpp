// main() of the GoogleTest binaries: GoogleTest's own, plus --version as in every binary.
#include <gtest/gtest.h>
#include <spanheap/version.hpp>

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
