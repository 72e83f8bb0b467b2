// End-to-end tests of the sweepgen protocol (DESIGN §3): several Ps driven from one thread through
// every transition T1-T8 under both flush policies, asserting each span's state after each step,
// plus the scenarios of the Go bugs DESIGN §8 names.
#include <gtest/gtest.h>

#include "heap_state.hpp"
#include "page_map.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

using testing::SpanLocation;

struct SweepgenTest : ::testing::Test {
  testing::RecordingHandler rec;
  void TearDown() override {
    for (const ErrorReport& r : rec.take()) ADD_FAILURE() << "unexpected report: " << r.message;
  }
};

TEST_F(SweepgenTest, LazyFlushWalksT1ThroughT8) {
  Heap heap(test::deterministic(2, rec));
  Proc p0 = heap.proc(0), p1 = heap.proc(1);

  // T1 + T5: a new span starts at sg and is cached at sg+3.
  void* a = p0.allocate(64);
  ASSERT_NE(a, nullptr);
  auto snap = testing::snapshot(heap);
  const testing::SpanInfo* sa = test::span_containing(snap, a);
  ASSERT_NE(sa, nullptr);
  EXPECT_EQ(sa->sweepgen_delta, 3);
  EXPECT_EQ(sa->location, SpanLocation::cached);
  EXPECT_EQ(sa->cache_proc, 0);
  EXPECT_TRUE(snap.sweep_done);

  // T7: the bump turns the cached span stale (sg+1); both Ps are stale.
  testing::begin_cycle(heap);
  snap = testing::snapshot(heap);
  sa = test::span_containing(snap, a);
  EXPECT_EQ(sa->sweepgen_delta, 1);
  EXPECT_EQ(snap.procs[0].flush_gen_delta, -2);
  EXPECT_EQ(snap.procs[1].flush_gen_delta, -2);
  EXPECT_FALSE(snap.sweep_done);

  // Sweepers never take a cached span, and "sweep done" stays false while a P is stale
  // (Go #45315 / #46500 / the 1.12 hole of §5.8).
  EXPECT_FALSE(heap.sweep_one());
  EXPECT_FALSE(testing::sweep_done(heap));
  EXPECT_EQ(test::span_containing(testing::snapshot(heap), a)->sweepgen_delta, 1);

  // P1 wakes: it flushes (nothing cached) and allocates a fresh span; P0 stays idle and stale.
  void* b = p1.allocate(64);
  snap = testing::snapshot(heap);
  EXPECT_EQ(snap.procs[1].flush_gen_delta, 0);
  EXPECT_EQ(snap.procs[0].flush_gen_delta, -2);
  EXPECT_EQ(test::span_containing(snap, b)->sweepgen_delta, 3);
  EXPECT_EQ(test::span_containing(snap, a)->sweepgen_delta, 1);

  // T3 then T4: P0 wakes, flushes lazily: sg+1 -> sg-1 by store, swept by P0 itself -> sg.
  const Stats before = heap.stats();
  p0.wake();
  snap = testing::snapshot(heap);
  sa = test::span_containing(snap, a);
  EXPECT_EQ(sa->sweepgen_delta, 0);
  EXPECT_EQ(sa->location, SpanLocation::central_partial_swept);
  EXPECT_EQ(snap.stats.flushes_lazy, before.flushes_lazy + 1);
  EXPECT_EQ(snap.stats.swept_by_flush, before.swept_by_flush + 1);
  EXPECT_EQ(snap.procs[0].flush_gen_delta, 0);
  EXPECT_TRUE(snap.sweep_done);

  // Free a from P1: the object becomes pending on a swept span.
  p1.free(a);
  snap = testing::snapshot(heap);
  EXPECT_EQ(test::span_containing(snap, a)->pending_frees, 1u);
  EXPECT_EQ(snap.stats.pending_frees, 1u);

  // Next cycle: the uncached span goes to sg-2; the barrier flushes idle P1 (stale B swept).
  heap.collect();
  snap = testing::snapshot(heap);
  sa = test::span_containing(snap, a);
  EXPECT_EQ(sa->sweepgen_delta, -2);
  EXPECT_EQ(sa->location, SpanLocation::central_partial_unswept);
  EXPECT_EQ(test::span_containing(snap, b)->sweepgen_delta, 0);
  EXPECT_GE(snap.stats.flushes_barrier, 2u);
  EXPECT_FALSE(snap.sweep_done);

  // T2 + T4 + T8: a sweeper takes A (CAS), reclaims its only object and frees it to the heap.
  EXPECT_TRUE(heap.sweep_one());
  snap = testing::snapshot(heap);
  sa = test::span_containing(snap, a);
  ASSERT_NE(sa, nullptr);
  EXPECT_FALSE(sa->in_use);
  EXPECT_EQ(sa->location, SpanLocation::page_heap_free);
  EXPECT_EQ(snap.stats.live_objects, 1u);
  EXPECT_EQ(snap.stats.pending_frees, 0u);
  EXPECT_VERIFIED(heap);
}

// The class of objects of `size` bytes (one that exists: the tests pick sizes of the table).
testing::SizeClassInfo class_of_size(std::size_t size) {
  for (const testing::SizeClassInfo& c : testing::size_classes())
    if (c.size == size) return c;
  ADD_FAILURE() << "no class of " << size << " bytes";
  return testing::size_classes().front();
}

// Fills P p's span of class `sc` and allocates one more object (in the next span): returns them.
std::vector<void*> fill_span_and_one(Proc p, const testing::SizeClassInfo& sc) {
  std::vector<void*> objs;
  for (unsigned i = 0; i <= sc.nelems; i++) objs.push_back(p.allocate(sc.size));
  return objs;
}

TEST_F(SweepgenTest, RefillUncachesFullSpanAtSgT6) {
  Options o = test::deterministic(1, rec);
  o.reuse = ReusePolicy::next_cycle;  // under owner reuse the P parks it (the next test)
  Heap heap(o);
  Proc p = heap.proc(0);
  const testing::SizeClassInfo sc = class_of_size(1024);
  std::vector<void*> objs = fill_span_and_one(p, sc);
  auto snap = testing::snapshot(heap);
  const testing::SpanInfo* first = test::span_containing(snap, objs.front());
  const testing::SpanInfo* second = test::span_containing(snap, objs.back());
  ASSERT_NE(first, second);
  EXPECT_EQ(first->sweepgen_delta, 0);
  EXPECT_EQ(first->location, SpanLocation::central_full_swept);
  EXPECT_EQ(first->alloc_count, sc.nelems);
  EXPECT_EQ(second->sweepgen_delta, 3);
  EXPECT_EQ(second->location, SpanLocation::cached);
  EXPECT_VERIFIED(heap);
}

// Owner reuse: the refill parks the full span in the P's owned set, at sg+3 with the P as owner
// (INV-S5); once the set holds max_owned_spans(), every further refill evicts one owned span to
// central at sg (T6), and a flush returns every owned span (T6 for each).
TEST_F(SweepgenTest, RefillParksFullSpanThenEvictsItToCentralAtSgT6) {
  Heap heap(test::deterministic(1, rec));
  Proc p = heap.proc(0);
  const testing::SizeClassInfo sc = class_of_size(1024);
  std::vector<void*> objs = fill_span_and_one(p, sc);
  auto snap = testing::snapshot(heap);
  const testing::SpanInfo* first = test::span_containing(snap, objs.front());
  const testing::SpanInfo* second = test::span_containing(snap, objs.back());
  ASSERT_NE(first, second);
  EXPECT_EQ(first->sweepgen_delta, 3);
  EXPECT_EQ(first->location, SpanLocation::cached);
  EXPECT_EQ(first->cache_proc, 0);
  EXPECT_TRUE(first->owned);
  EXPECT_EQ(first->alloc_count, sc.nelems);
  EXPECT_EQ(second->location, SpanLocation::cached);
  EXPECT_FALSE(second->owned);
  EXPECT_EQ(snap.procs[0].cached_spans, 2u);
  EXPECT_VERIFIED(heap);
  // One span short of the bound: nothing has left the cache.
  for (unsigned i = 0; i < (testing::max_owned_spans() - 1) * sc.nelems; i++)
    objs.push_back(p.allocate(1024));
  snap = testing::snapshot(heap);
  EXPECT_TRUE(test::span_containing(snap, objs.front())->owned);
  EXPECT_EQ(snap.procs[0].cached_spans, testing::max_owned_spans() + 1);
  auto in_central = [](const testing::HeapSnapshot& hs) {
    std::vector<testing::SpanInfo> out;
    for (const testing::SpanInfo& s : hs.spans)
      if (s.in_use && s.location != SpanLocation::cached) out.push_back(s);
    return out;
  };
  EXPECT_TRUE(in_central(snap).empty());
  // Each refill past the bound evicts exactly one owned span: full, at sg, on central's swept
  // full list (T6); the P still caches the bound and its current span.
  for (std::size_t evicted = 1; evicted <= 3; evicted++) {
    for (unsigned i = 0; i < sc.nelems; i++) objs.push_back(p.allocate(1024));
    snap = testing::snapshot(heap);
    const std::vector<testing::SpanInfo> central = in_central(snap);
    ASSERT_EQ(central.size(), evicted);
    for (const testing::SpanInfo& s : central) {
      EXPECT_EQ(s.location, SpanLocation::central_full_swept);
      EXPECT_EQ(s.sweepgen_delta, 0);
      EXPECT_EQ(s.alloc_count, sc.nelems);
    }
    EXPECT_EQ(snap.procs[0].cached_spans, testing::max_owned_spans() + 1);
    EXPECT_VERIFIED(heap);
  }
  testing::flush_all(heap);
  snap = testing::snapshot(heap);
  EXPECT_EQ(snap.procs[0].cached_spans, 0u);
  for (const testing::SpanInfo& s : snap.spans) EXPECT_NE(s.location, SpanLocation::cached);
  EXPECT_VERIFIED(heap);
  for (void* o : objs) p.free(o);
}

TEST_F(SweepgenTest, EagerFlushEmptiesCachesInsideThePause) {
  Heap heap(test::deterministic(3, rec, FlushPolicy::eager));
  void* a = heap.proc(0).allocate(48);
  void* b = heap.proc(2).allocate(200);
  testing::begin_cycle(heap);
  auto snap = testing::snapshot(heap);
  for (const testing::ProcInfo& p : snap.procs) {
    EXPECT_EQ(p.flush_gen_delta, 0);
    EXPECT_EQ(p.cached_spans, 0u);
  }
  EXPECT_EQ(test::span_containing(snap, a)->sweepgen_delta, -2);
  EXPECT_EQ(test::span_containing(snap, b)->sweepgen_delta, -2);
  EXPECT_EQ(snap.stats.flushes_eager, 3u);
  EXPECT_EQ(snap.stats.flushes_lazy + snap.stats.flushes_barrier, 0u);
  while (heap.sweep_one()) {
  }
  EXPECT_TRUE(testing::sweep_done(heap));
  EXPECT_VERIFIED(heap);
}

TEST_F(SweepgenTest, FreeIntoAnotherPsCurrentCacheDoesNotWait) {
  // Go #27997's lesson: "swept" is sg or sg+3. A free of an object in a span that another P has
  // cached since the bump must proceed at once.
  Heap heap(test::deterministic(2, rec));
  void* a = heap.proc(0).allocate(32);
  heap.proc(1).free(a);
  auto snap = testing::snapshot(heap);
  EXPECT_EQ(test::span_containing(snap, a)->sweepgen_delta, 3);
  EXPECT_EQ(test::span_containing(snap, a)->pending_frees, 1u);
}

TEST_F(SweepgenTest, FreeIntoStaleIdlePFlushesIt) {
  Heap heap(test::deterministic(2, rec));
  void* a = heap.proc(0).allocate(32);
  void* keep = heap.proc(0).allocate(32);
  testing::begin_cycle(heap);
  heap.proc(1).free(a);  // P0 is idle and stale: the freer flushes it (barrier work done early)
  auto snap = testing::snapshot(heap);
  EXPECT_EQ(snap.procs[0].flush_gen_delta, 0);
  EXPECT_EQ(test::span_containing(snap, a)->sweepgen_delta, 0);
  EXPECT_EQ(test::span_containing(snap, a)->pending_frees, 1u);
  EXPECT_EQ(test::span_containing(snap, keep)->alloc_count, 2u);
  EXPECT_VERIFIED(heap);
}

TEST_F(SweepgenTest, RecycledSpanStructIsNeverSweptThroughAStalePointer) {
  // Go #27997: a span is freed to the heap, its pages and struct reused for a span of another
  // class and cached, while an old pointer into it is freed again.
  Heap heap(test::deterministic(2, rec));
  void* a0 = heap.proc(0).allocate(4096);
  auto* a1 = static_cast<char*>(heap.proc(0).allocate(4096));
  ASSERT_EQ(a1, static_cast<char*>(a0) + 4096);
  heap.proc(0).free(a0);
  heap.proc(0).free(a1);
  heap.collect();
  while (heap.sweep_one()) {
  }
  auto snap = testing::snapshot(heap);
  EXPECT_FALSE(test::span_containing(snap, a1)->in_use);
  void* c = heap.proc(1).allocate(16);  // reuses the freed pages for 16-byte objects
  ASSERT_EQ(c, a0);
  snap = testing::snapshot(heap);
  EXPECT_EQ(test::span_containing(snap, a1)->sweepgen_delta, 3);
  EXPECT_EQ(test::span_containing(snap, a1)->span_class, testing::size_to_class(16, 16));
  heap.proc(0).free(a1);  // stale pointer: now slot 256 of the new span, never allocated
  const auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ErrorKind::invalid_free) << reports[0].message;
  snap = testing::snapshot(heap);
  EXPECT_EQ(snap.stats.live_objects, 1u);
  EXPECT_EQ(snap.stats.pending_frees, 0u);
  EXPECT_EQ(test::span_containing(snap, a1)->sweepgen_delta, 3);
  EXPECT_VERIFIED(heap);
}

TEST_F(SweepgenTest, ForcedFlushDuringSweepPhaseKeepsDebtSane) {
  // Go #57523: flushing every cache during the sweep phase, then allocating from every P, must
  // not produce a huge proportional-sweep debt (the debt here counts bytes allocated since the
  // bump, which a flush cannot lower).
  Options o = test::deterministic(4, rec);
  o.gc_percent = 100;
  Heap heap(o);
  std::vector<void*> keep;
  for (int i = 0; i < 20000; i++) keep.push_back(heap.proc(i % 4).allocate(96));
  for (std::size_t i = 0; i < keep.size(); i += 2) heap.free(keep[i]);
  testing::begin_cycle(heap);
  testing::flush_all(heap);
  const Stats before = heap.stats();
  for (unsigned p = 0; p < 4; p++)
    for (int i = 0; i < 100; i++) ASSERT_NE(heap.proc(p).allocate(96), nullptr);
  const Stats after = heap.stats();
  // 400 objects of 96 B need a few spans: proportional sweep may sweep some, never everything
  // for a handful of bytes, and never hangs.
  EXPECT_LT(after.swept_proportional - before.swept_proportional, 200u);
  EXPECT_VERIFIED(heap);
}

}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {

// "Sweep done" observed from inside the transitions it must cover (Go #45315 / #46500 and the
// Go 1.12 hole): mid-flush of a stale P and mid-sweep of an owned span it must be false.
TEST(SweepDone, IsFalseWhileAStalePIsHalfwayThroughItsFlush) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(2, rec));
  for (std::size_t size : {16, 64, 256, 1024}) heap.proc(0).allocate(size);
  testing::begin_cycle(heap);
  heap.proc(1).wake();  // P1 had nothing cached; only P0 stays stale
  std::vector<bool> seen;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point == testing::ProtocolPoint::flush_released_span)
      seen.push_back(testing::sweep_done(heap));
  });
  heap.proc(0).wake();
  testing::set_protocol_hook(heap, {});
  ASSERT_EQ(seen.size(), 4u);
  for (bool done : seen) EXPECT_FALSE(done);
  EXPECT_TRUE(testing::sweep_done(heap));
  EXPECT_EQ(rec.count(), 0u);
}

TEST(SweepDone, IsFalseWhileTheLastSpanIsBeingSwept) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  void* a = heap.allocate(64);
  heap.collect();  // the barrier flushes P0: the span goes to central, swept
  heap.free(a);
  testing::begin_cycle(heap);     // the span is now the only unswept one
  testing::ragged_barrier(heap);  // no stale P: only the sweep itself can keep "done" false
  EXPECT_FALSE(testing::sweep_done(heap));
  std::vector<bool> seen;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point == testing::ProtocolPoint::sweep_owned) seen.push_back(testing::sweep_done(heap));
  });
  EXPECT_TRUE(heap.sweep_one());
  testing::set_protocol_hook(heap, {});
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0]);
  EXPECT_TRUE(testing::sweep_done(heap));
  EXPECT_EQ(rec.count(), 0u);
}

}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {

// T4 must not precede the span's last write: a span that its sweep emptied looks swept (sg) only
// once page_free has marked it free and rewritten its fields. Published earlier, a concurrent
// free of a pointer into it skips ensure_swept and reads nelems/start while page_free and
// coalescing rewrite them (a data race, and a double free reported as a span-tail invalid_free).
TEST(SweepDone, AnEmptiedSpanIsNotPublishedSweptBeforePageFreeFinishes) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  void* a = heap.allocate(64);
  heap.collect();  // the span goes to central, swept
  heap.free(a);
  testing::begin_cycle(heap);  // unswept; its sweep will empty it and free its pages
  testing::ragged_barrier(heap);
  detail::HeapState& state = heap.state();
  detail::Span* span = detail::span_of(state, reinterpret_cast<std::uintptr_t>(a));
  ASSERT_NE(span, nullptr);
  int calls = 0;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::page_free_begin) return;
    calls++;
    // What a freer holding a P would read: in use and swept means "safe to read the slots".
    const bool in_use = span->state.load() == detail::SpanState::in_use;
    EXPECT_FALSE(in_use && span->sweepgen.load() == state.sg())
        << "the emptied span is published swept (T4) before page_free rewrites it";
  });
  EXPECT_TRUE(heap.sweep_one());
  testing::set_protocol_hook(heap, {});
  EXPECT_EQ(calls, 1);
  // A free run now, or absorbed (dead) into a larger free neighbour; at sg either way.
  const detail::SpanState after = span->state.load();
  EXPECT_TRUE(after == detail::SpanState::free || after == detail::SpanState::dead);
  EXPECT_EQ(span->sweepgen.load(), state.sg());  // a free span rests at sg
  heap.free(a);  // late double free: its kind never depends on timing
  ASSERT_EQ(rec.count(ErrorKind::double_free), 1u);
  EXPECT_EQ(rec.count(), 1u);
}

}  // namespace
}  // namespace spanheap
