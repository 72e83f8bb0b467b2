// page_heap: large allocations of 1 to 512 pages, frees and cycles against a model of which
// pages are live, with testing::FakeOsMemory failing reserves and commits or capping committed
// bytes, and memory limits: out-of-memory must be an out_of_memory report and nullptr, only when
// a limit or an injected failure explains it, and the heap must stay consistent afterwards.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(page_heap)
