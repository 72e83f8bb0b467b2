// The pacing contract (DESIGN §4, docs/design.md "The cycle" step 6) held over many cycles of a
// fixed, deterministic program: proportional sweep keeps pace with the bytes charged in every
// cycle — neither behind (a basis never reset makes the debt look paid) nor ahead (a charge
// never reset sweeps everything at the first refill) — and finishes before the next trigger, so a
// heap without background sweepers leaves nothing to termination; cycles come when the pacer's
// trigger says, no more often (a charge that underflows makes every slow allocation a cycle).
#include <gtest/gtest.h>

#include <vector>

#include "test_util.hpp"

namespace spanheap {
namespace {

// Deterministic (no sweepers, one P) with pacing on: the trigger is the 4 MiB floor while
// survivors stay below it. The only sweepers are the program's own calls.
Options paced(testing::RecordingHandler& rec) {
  Options o = test::deterministic(1, rec);
  o.gc_percent = 100;
  return o;
}

std::uint64_t unswept_pages(Heap& heap) {
  std::uint64_t pages = 0;
  for (const testing::SpanInfo& s : testing::snapshot(heap).spans)
    if (s.in_use && s.sweepgen_delta == -2) pages += s.npages;
  return pages;
}

TEST(PacingContract, ProportionalSweepKeepsPaceInEveryCycle) {
  testing::RecordingHandler rec;
  Heap heap(paced(rec));
  // 96 one-page spans of the 64-byte class, each with live objects (no span is released, so
  // every cycle has the same pages to sweep) and, in the first cycle, pending frees.
  std::vector<void*> objects;
  for (int i = 0; i < 96 * 128; i++) objects.push_back(heap.allocate(64));
  for (std::size_t i = 0; i < objects.size(); i += 2) heap.free(objects[i]);
  const std::uint64_t floor = testing::pacing_trigger_floor();
  for (int cycle = 1; cycle <= 6; cycle++) {
    testing::flush_all(heap);  // nothing stays cached: every span waits on an unswept list
    heap.collect();
    const std::uint64_t to_sweep = unswept_pages(heap);
    ASSERT_EQ(to_sweep, 96u) << "cycle " << cycle;
    const double ratio = testing::plan_pacing(0, 100, 0, 0, to_sweep).pages_per_byte;
    const std::uint64_t before = heap.stats().swept_proportional;
    std::uint64_t charged = 0;
    // Ten charges of 9% of the trigger, then the rest of the way to it: all sweeping is due by
    // 90% of the way (up to the rounding of the ratio), and done before the next cycle.
    for (int step = 1; step <= 11; step++) {
      const std::uint64_t bytes = step <= 10 ? floor * 9 / 100 : floor - 1 - charged;
      charged += bytes;
      testing::proportional_sweep(heap, bytes);
      const std::uint64_t owed = std::min(to_sweep, testing::sweep_target(ratio, charged));
      ASSERT_EQ(heap.stats().swept_proportional - before, owed)
          << "cycle " << cycle << ", after " << charged << " bytes charged";
      ASSERT_EQ(unswept_pages(heap), to_sweep - owed) << "cycle " << cycle;
    }
    EXPECT_TRUE(testing::sweep_done(heap)) << "cycle " << cycle;
    EXPECT_VERIFIED(heap);
  }
  EXPECT_EQ(heap.stats().swept_termination, 0u);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(PacingContract, AGrowingProgramCyclesWhenTheTriggerSaysAndLeavesNothingToTermination) {
  testing::RecordingHandler rec;
  Heap heap(paced(rec));
  // 2 MiB of 128-byte objects that no refill touches again: after each bump only proportional
  // sweep (or termination) can sweep their spans.
  std::vector<void*> keep;
  for (int i = 0; i < 16384; i++) keep.push_back(heap.allocate(128));
  const Stats start = heap.stats();
  EXPECT_EQ(start.cycles, 0u);
  // Then 26 MiB of 64-byte objects, all kept: the survivors double between cycles, so does the
  // trigger (the 4 MiB floor, then gc_percent = 100% of what survived): cycles at about 4, 8 and
  // 16 MiB charged, the next one due at about 32 MiB.
  for (int i = 0; i < 26 * 16384; i++) keep.push_back(heap.allocate(64));
  const Stats end = heap.stats();
  EXPECT_EQ(end.cycles, 3u);
  // Every bump found the previous cycle's sweeping finished before it (by proportional sweep and
  // by the sweeps on demand of refills and of the page heap before it grows): nothing was left to
  // termination, and the 256 spans of 128-byte objects were swept in each of cycles 1 and 2 (the
  // few the P owned at the bump by its flush). How much of it was proportional depends on how
  // far ahead the sweeps on demand ran; the first test pins the proportional share exactly.
  EXPECT_EQ(end.swept_termination, 0u);
  EXPECT_GE(end.swept_proportional + end.swept_on_demand + end.swept_by_flush, 2u * 256u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
  for (void* p : keep) heap.free(p);
}

}  // namespace
}  // namespace spanheap
