// Tests of the oracle library itself: each rule must fire on a state that breaks it and stay
// quiet on a healthy one (an oracle that cannot fail guards nothing).
#include <gtest/gtest.h>
#include <spanheap/oracle/content.hpp>
#include <spanheap/oracle/rng.hpp>
#include <spanheap/oracle/shadow.hpp>
#include <spanheap/oracle/snapshot_check.hpp>
#include <spanheap/oracle/sweepgen_moves.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace spanheap::oracle {
namespace {

using testing::HeapSnapshot;
using testing::SpanInfo;
using testing::SpanLocation;

bool names(const std::vector<Violation>& v, const std::string& id) {
  return std::any_of(v.begin(), v.end(), [&](const Violation& x) { return x.invariant == id; });
}

// One P, flushed, caching one small span of class `c` with one object; stats to match.
HeapSnapshot healthy_snapshot() {
  const testing::SizeClassInfo c = testing::size_classes().front();
  HeapSnapshot snap;
  snap.sweepgen = 10;
  snap.stats.sweepgen = 10;
  snap.procs.push_back(testing::ProcInfo{0, 0, true, 1});
  SpanInfo s;
  s.base = 0x100000;
  s.npages = c.npages;
  s.in_use = true;
  s.span_class = c.span_class;
  s.elem_size = c.size;
  s.nelems = c.nelems;
  s.free_index = 1;
  s.alloc_count = 1;
  s.sweepgen_delta = 3;
  s.location = SpanLocation::cached;
  s.cache_proc = 0;
  snap.spans.push_back(s);
  snap.sweep_done = true;
  snap.stats.live_objects = 1;
  snap.stats.live_bytes = c.size;
  snap.stats.span_bytes = c.npages * page_size;
  snap.stats.mapped_bytes = c.npages * page_size;
  return snap;
}

TEST(SnapshotCheck, HealthySnapshotHasNoViolation) {
  const auto v = snapshot_violations(healthy_snapshot());
  EXPECT_TRUE(v.empty()) << join(v);
}

TEST(SnapshotCheck, CachedSpanAtTheWrongSweepgenIsInvS3) {
  HeapSnapshot snap = healthy_snapshot();
  snap.spans[0].sweepgen_delta = 1;  // sg+1 in a flushed cache
  EXPECT_TRUE(names(snapshot_violations(snap), "INV-S3"));
}

// A P's owned spans (besides its current one) are full: parking is for spans allocation exhausted.
TEST(SnapshotCheck, OwnedSpanWithFreeSlotsIsInvS5) {
  HeapSnapshot snap = healthy_snapshot();
  snap.spans[0].owned = true;  // one object of nelems: not full
  EXPECT_TRUE(names(snapshot_violations(snap), "INV-S5"));
  snap.spans[0].free_index = snap.spans[0].nelems;
  snap.spans[0].alloc_count = snap.spans[0].nelems;
  snap.stats.live_objects = snap.spans[0].nelems;
  snap.stats.live_bytes = snap.spans[0].nelems * snap.spans[0].elem_size;
  const auto v = snapshot_violations(snap);
  EXPECT_FALSE(names(v, "INV-S5")) << join(v);
}

// One current span per class per P; owned spans of the class beside it are not a second one.
TEST(SnapshotCheck, TwoCurrentSpansOfAClassAreInvS3ButOwnedOnesAreNot) {
  HeapSnapshot snap = healthy_snapshot();
  SpanInfo second = snap.spans[0];
  second.base += snap.spans[0].npages * page_size;
  snap.spans.push_back(second);
  snap.procs[0].cached_spans = 2;
  EXPECT_TRUE(names(snapshot_violations(snap), "INV-S3"));
  snap.spans[1].owned = true;
  snap.spans[1].free_index = snap.spans[1].alloc_count = snap.spans[1].nelems;
  EXPECT_FALSE(names(snapshot_violations(snap), "INV-S3"));
}

TEST(SnapshotCheck, SweepDoneWithAStalePIsInvG6) {
  HeapSnapshot snap = healthy_snapshot();
  snap.procs[0].flush_gen_delta = -2;
  snap.spans[0].sweepgen_delta = 1;
  EXPECT_TRUE(names(snapshot_violations(snap), "INV-G6"));
}

TEST(SnapshotCheck, StatsDisagreeingWithSpansIsInvC) {
  HeapSnapshot snap = healthy_snapshot();
  snap.stats.live_objects = 2;
  EXPECT_TRUE(names(snapshot_violations(snap), "INV-C"));
}

TEST(SnapshotCheck, OverlappingSpansAreReported) {
  HeapSnapshot snap = healthy_snapshot();
  SpanInfo free_run;
  free_run.base = snap.spans[0].base + page_size / 2;
  free_run.npages = 1;
  free_run.location = SpanLocation::page_heap_free;
  snap.spans.push_back(free_run);
  snap.stats.mapped_bytes += page_size;
  EXPECT_TRUE(names(snapshot_violations(snap), "page_map"));
}

TEST(SweepgenMoves, OnlyTheOwnerOrTheBarrierSweepsAStaleCachedSpan) {
  EXPECT_TRUE(judge_sweepgen_move(1, 0, owner).allowed);
  EXPECT_TRUE(judge_sweepgen_move(1, 0, barrier).allowed);
  EXPECT_TRUE(judge_sweepgen_move(1, 0, owner).sweeps);
  const MoveVerdict v = judge_sweepgen_move(1, 0, sweeper);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(std::string(v.invariant), "INV-S4");
}

TEST(SweepgenMoves, MovesOutsideTheTableAreRefused) {
  EXPECT_FALSE(judge_sweepgen_move(0, -2, sweeper | owner | barrier).allowed);
  EXPECT_FALSE(judge_sweepgen_move(3, 1, owner).allowed);
  EXPECT_FALSE(judge_sweepgen_move(-2, 3, sweeper).allowed);  // cached by no allocating P
  EXPECT_TRUE(judge_sweepgen_move(-2, 3, sweeper | allocating_owner).allowed);
  EXPECT_FALSE(judge_sweepgen_move(3, 3, flush_all).allowed);
}

TEST(Content, AFlippedByteIsFoundAtItsOffset) {
  std::array<std::byte, 100> buf{};
  write_pattern(buf.data(), mix(7), 0, buf.size());
  EXPECT_FALSE(find_mismatch(buf.data(), mix(7), 0, buf.size()));
  buf[61] ^= std::byte{1};
  EXPECT_EQ(find_mismatch(buf.data(), mix(7), 0, buf.size()), 61u);
  EXPECT_TRUE(find_mismatch(buf.data(), mix(8), 0, 8));  // another seed's pattern differs
}

TEST(Rng, StreamsOfOneSeedDiffer) {
  Rng a(1, 0), b(1, 1), c(1, 0);
  EXPECT_NE(a.next(), b.next());
  Rng d(1, 0);
  EXPECT_EQ(c.next(), d.next());
}

TEST(Shadow, ASlotHandedOutTwiceAndAnEarlyReuseAreCaught) {
  std::array<std::byte, 256> mem{};
  ShadowHeap shadow;
  shadow.reserve(4);
  const auto at = [&](std::size_t o) { return reinterpret_cast<std::uintptr_t>(mem.data() + o); };
  ASSERT_EQ(shadow.check_new(at(0), 32, 0).overlaps_live, nullptr);
  shadow.add_live(LiveObject{0, mem.data(), 32, 16, 32, 1, 0});
  EXPECT_NE(shadow.check_new(at(16), 32, 0).overlaps_live, nullptr);  // handed out twice
  shadow.free_live(0, /*now=*/0);
  EXPECT_NE(shadow.check_new(at(0), 32, 0).reused_too_early, nullptr);  // same cycle
  const auto later = shadow.check_new(at(0), 32, 1);                    // after a cycle
  EXPECT_EQ(later.reused_too_early, nullptr);
  EXPECT_TRUE(shadow.pending().empty());
  EXPECT_EQ(shadow.reclaimed().size(), 1u);
}

TEST(Shadow, OwnerReuseAllowsReuseAtOnceAndReclaimsLargeObjectsAtTheirFree) {
  std::array<std::byte, 256> mem{};
  ShadowHeap shadow(ReusePolicy{spanheap::ReusePolicy::owner});
  shadow.reserve(4);
  const auto at = [&](std::size_t o) { return reinterpret_cast<std::uintptr_t>(mem.data() + o); };
  shadow.add_live(LiveObject{0, mem.data(), 32, 16, 32, 1, 0});
  shadow.free_live(0, /*now=*/0);
  const auto same_cycle = shadow.check_new(at(0), 32, 0);  // a collection may reuse it at once
  EXPECT_EQ(same_cycle.reused_too_early, nullptr);
  EXPECT_EQ(shadow.reclaimed().size(), 1u);
  shadow.add_live(LiveObject{1, mem.data() + 64, 100000, 16, 106496, 2, 0, /*large=*/true});
  shadow.free_live(0, 0);  // T10: reclaimed by its free, never pending
  EXPECT_TRUE(shadow.pending().empty());
  EXPECT_EQ(shadow.reclaimed().size(), 2u);
  // "Sweep done" still reclaims only what was freed before the cycle.
  const FreedObject f{2, mem.data(), 32, 32, /*freed_in_cycle=*/3};
  EXPECT_FALSE(shadow.policy().must_be_reclaimed(f, 3, true));
  EXPECT_TRUE(shadow.policy().must_be_reclaimed(f, 4, true));
}

TEST(Shadow, ASpanLifeEndsOnlyWhenAReleaseFindsItWithoutLiveObjects) {
  std::array<std::byte, 256> mem{};
  ShadowHeap shadow;
  shadow.reserve(8);
  const std::uintptr_t span = reinterpret_cast<std::uintptr_t>(mem.data());
  const std::uint32_t life = shadow.join_span_life(span, 5, false);
  shadow.add_live(LiveObject{0, mem.data(), 16, 16, 16, 1, 0, false, life});
  shadow.add_live(LiveObject{1, mem.data() + 16, 16, 16, 16, 1, 0, false,
                             shadow.join_span_life(span, 5, false)});
  ASSERT_EQ(shadow.join_span_life(span, 5, true), life);  // it holds live objects: the same span
  const FreedObject& f = shadow.free_live(0, 0);
  shadow.spans_released();  // #1 keeps the span alive
  EXPECT_TRUE(shadow.span_life_intact(f));
  shadow.free_live(0, 0);
  shadow.spans_released();  // now it may have gone back to the page heap
  EXPECT_FALSE(shadow.span_life_intact(shadow.pending().front()));
  EXPECT_NE(shadow.join_span_life(span, 5, false), life);  // a new object starts a new life
}

}  // namespace
}  // namespace spanheap::oracle
