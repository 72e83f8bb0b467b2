// Yield injection at the heap's protocol points (testing::ProtocolPoint): with --yield-at-points N
// every thread that reaches a point yields there with probability 3N/1000 and sleeps a few dozen
// microseconds with probability N/1000, so the threads of a stress run meet in the windows the
// protocol names (a span owned but not yet swept, a flush halfway, a span on its way to the page
// heap, a find_object holding the page heap lock) instead of racing past them. The choices come
// from a per-thread stream of the run's seed; the interleaving itself stays the OS's.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstdint>

namespace spanheap::stress {

// Installs the hook on `heap` when per_mille > 0. Call it right after constructing the heap, before
// any thread makes a heap call or a cycle wakes its sweepers. per_mille must be at most 250.
void arm_yield_points(Heap& heap, std::uint64_t seed, unsigned per_mille);

// Points reached and pauses taken so far, over every armed heap of the process (for the summary).
struct YieldCounts {
  std::uint64_t points = 0;
  std::uint64_t yields = 0;
  std::uint64_t sleeps = 0;
};
YieldCounts yield_counts();

}  // namespace spanheap::stress
