// Fuzz regressions as readable programs: each TEST below was printed by `ci/repro <file> --save`
// (Program::to_gtest) for an input kept in fuzz/regressions/<target>/, and runs the program
// through the same executor and oracle as the fuzzers. See README.md here.
#include <gtest/gtest.h>

#include "executor.hpp"
#include "program.hpp"

namespace spanheap::fuzz {
namespace {}  // namespace
}  // namespace spanheap::fuzz
