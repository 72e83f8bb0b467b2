// alloc_free: allocate any size up to large objects with any alignment, fill each object with its
// content pattern, free, rewrite and check objects, collect and sweep_one, under both flush
// policies, pacing on or off. The oracle (program/executor.hpp) checks every step.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(alloc_free)
