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

// Under ReusePolicy::owner the pacer charges the pages the page heap hands out, net of those it
// takes back (never below 0): memory freed and allocated again brings no cycle, growth does.
class OwnerPacing : public ::testing::Test {
 protected:
  static Options options(testing::RecordingHandler& rec) {
    Options o = paced(rec);
    o.arena_bytes = std::size_t{64} << 20;  // room for the large objects in one arena
    return o;
  }
  static constexpr std::size_t sizes[] = {40 << 10, 64 << 10, 100 << 10, 256 << 10};
  // Large objects only, each a whole number of pages: the charge moves by exactly their sizes.
  static std::size_t draw(std::uint64_t& state) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return sizes[(state >> 33) % std::size(sizes)];
  }
  testing::RecordingHandler rec;
  Heap heap{options(rec)};
};

TEST_F(OwnerPacing, ReplacingObjectsRunsNoCycleAndGrowingByTheTriggerRunsOne) {
  std::uint64_t state = 1;
  std::vector<void*> ring(256);  // about 29 MiB live
  for (void*& p : ring) p = heap.allocate(draw(state));
  heap.collect();  // a bump with the ring as its survivors: the trigger is the ring's size
  const testing::HeapSnapshot bump = testing::snapshot(heap);
  ASSERT_GE(bump.pacer_trigger, bump.pacer_live_at_bump);
  ASSERT_EQ(bump.pacer_charged, 0u);
  // Replacing objects moves the live size by a few MiB either way (the sum of 256 draws), far
  // from the trigger: no cycle, however much is allocated. (Counting every allocation, as a
  // heap without reuse must, would run a cycle every ~256 replacements.)
  for (int op = 0; op < 4000; op++) {
    void*& slot = ring[draw(state) % ring.size()];
    heap.free(slot);
    slot = heap.allocate(draw(state));
  }
  EXPECT_EQ(heap.stats().cycles, bump.stats.cycles);
  // Growth: the charge reaches the trigger after exactly this many more 256 KiB objects, and the
  // allocation that reaches it runs the cycle (nothing runs one before).
  const testing::HeapSnapshot before = testing::snapshot(heap);
  ASSERT_LT(before.pacer_charged, before.pacer_trigger);
  const std::size_t big = sizes[3];
  const std::uint64_t more = (before.pacer_trigger - before.pacer_charged + big - 1) / big;
  std::vector<void*> grown;
  for (std::uint64_t i = 0; i + 1 < more; i++) grown.push_back(heap.allocate(big));
  const testing::HeapSnapshot short_of = testing::snapshot(heap);
  EXPECT_EQ(short_of.stats.cycles, bump.stats.cycles);
  EXPECT_EQ(short_of.pacer_charged, before.pacer_charged + (more - 1) * big);
  grown.push_back(heap.allocate(big));
  EXPECT_EQ(heap.stats().cycles, bump.stats.cycles + 1);
  EXPECT_VERIFIED(heap);
  for (void* p : grown) heap.free(p);
  for (void* p : ring) heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
}

TEST_F(OwnerPacing, MemoryFreedAfterTheBumpCreditsNothingBelowZero) {
  std::uint64_t state = 7;
  std::vector<void*> old;
  for (int i = 0; i < 32; i++) old.push_back(heap.allocate(draw(state)));
  heap.collect();
  const std::uint64_t cycles = heap.stats().cycles;
  ASSERT_EQ(testing::snapshot(heap).pacer_charged, 0u);
  // Objects allocated before the bump were charged to the previous cycle: freeing them leaves
  // the charge at 0 (an unsigned credit would wrap it to a cycle at every slow allocation), and
  // banks nothing for later growth.
  for (void* p : old) heap.free(p);
  EXPECT_EQ(testing::snapshot(heap).pacer_charged, 0u);
  EXPECT_VERIFIED(heap);  // INV-P3: the charge is within the pages the spans hold
  void* p = heap.allocate(64 << 10);
  EXPECT_EQ(testing::snapshot(heap).pacer_charged, std::uint64_t{64} << 10);
  heap.free(p);
  EXPECT_EQ(testing::snapshot(heap).pacer_charged, 0u);
  EXPECT_EQ(heap.stats().cycles, cycles);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(PacingContract, NextCycleReuseChargesEveryAllocationAndCreditsNoFree) {
  testing::RecordingHandler rec;
  Options o = paced(rec);
  o.reuse = ReusePolicy::next_cycle;
  Heap heap(o);
  // Quarantine: a freed object's memory is reused only after the next cycle's sweep, so every
  // allocation is new memory until then and counts (Go's heap_live).
  void* a = heap.allocate(64 << 10);
  heap.free(a);
  void* b = heap.allocate(64 << 10);
  EXPECT_EQ(testing::snapshot(heap).pacer_charged, std::uint64_t{128} << 10);
  heap.free(b);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

}  // namespace
}  // namespace spanheap
