// A consumer of the installed spanheap: allocates, frees, runs a cycle and checks the heap, and
// prints the version it was built against. Exits non-zero (with a message) on any surprise.
#include <spanheap/spanheap.hpp>
#include <spanheap/version.hpp>

#include <cstdio>
#include <cstring>

int main() {
#ifdef EXPECTED_VERSION
  if (std::strcmp(SPANHEAP_VERSION_STRING, EXPECTED_VERSION) != 0) {
    std::fprintf(stderr, "consumer: header says %s, package says %s\n", SPANHEAP_VERSION_STRING,
                 EXPECTED_VERSION);
    return 1;
  }
#endif
  spanheap::Heap heap;
  void* small = heap.allocate(48);
  void* large = heap.allocate(1 << 20);
  if (small == nullptr || large == nullptr || !heap.owns(small) || heap.usable_size(small) < 48) {
    std::fprintf(stderr, "consumer: allocation failed\n");
    return 1;
  }
  std::memset(small, 0xab, 48);
  heap.free(small);
  heap.free(large);
  heap.collect();
  spanheap::VerifyResult result = heap.verify();
  if (!result.ok()) {
    std::fprintf(stderr, "consumer: verify() found %zu violation(s)\n", result.violations.size());
    return 1;
  }
  std::printf("consumer: spanheap %s ok\n", SPANHEAP_VERSION_STRING);
  return 0;
}
