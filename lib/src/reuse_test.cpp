// Tests of ReusePolicy (docs/design.md "Reuse"): the owner's collection of its cached span (T9a),
// central's collection of a span it hands out (T9b), the move of a freed-into full span to the
// partial list (INV-R1), the large free at free() (T10), and what each policy detects of bad frees.
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace spanheap {
namespace {

using testing::SpanLocation;

Options with_reuse(unsigned procs, testing::RecordingHandler& rec, ReusePolicy reuse) {
  Options o = test::deterministic(procs, rec);
  o.reuse = reuse;
  return o;
}

// Allocates through `p` until its cached span of `size` runs out: returns the span's objects.
std::vector<void*> fill_span(Heap& heap, Proc p, std::size_t size) {
  std::vector<void*> v{p.allocate(size)};
  const auto snap = testing::snapshot(heap);
  const unsigned nelems = test::span_containing(snap, v[0])->nelems;
  while (v.size() < nelems) v.push_back(p.allocate(size));
  return v;
}

// Frees the first testing::collect_threshold(v.size()) objects of `v` (a full span's objects)
// through `p`: just enough to make its span worth collecting. Returns what it freed.
std::vector<void*> free_threshold(Proc p, const std::vector<void*>& v) {
  const std::vector<void*> freed(
      v.begin(), v.begin() + static_cast<std::ptrdiff_t>(
                                 testing::collect_threshold(static_cast<unsigned>(v.size()))));
  for (void* obj : freed) p.free(obj);
  return freed;
}

TEST(Reuse, NextCycleNeverReusesBeforeASweep) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::next_cycle));
  void* a = heap.allocate(64);
  heap.free(a);
  for (int i = 0; i < 1000; i++) EXPECT_NE(heap.allocate(64), a);
  EXPECT_EQ(heap.stats().collections, 0u);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, OwnerCollectsItsOwnSpanWhenItRunsOut) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 64);
  const std::vector<void*> freed = free_threshold(heap.proc(0), v);
  // T9a: the span is full, ours, and collect_threshold of its slots are pending: the next
  // allocations are its collected slots, lowest first.
  for (void* p : freed) EXPECT_EQ(heap.proc(0).allocate(64), p);
  const Stats s = heap.stats();
  EXPECT_EQ(s.collections, 1u);
  EXPECT_EQ(s.collected_objects, freed.size());
  EXPECT_EQ(s.pending_frees, 0u);
  EXPECT_EQ(s.cycles, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, TooFewPendingFreesRefillInsteadOfCollecting) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 64);
  heap.proc(0).free(v[3]);  // one of 128: not worth a collection
  EXPECT_NE(heap.proc(0).allocate(64), v[3]);
  EXPECT_EQ(heap.stats().collections, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// T9a on owned spans: a refill looks at the owned spans parked longest ago, not only the oldest.
// Where a span's objects live on (spans of large classes hold one to six), the oldest is often
// not worth collecting while a younger one is, and a refill that stopped at the oldest took fresh
// pages instead.
TEST(Reuse, ARefillCollectsAnOwnedSpanBehindAnOlderOneWithNothingToCollect) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  Proc p = heap.proc(0);
  const std::vector<void*> oldest = fill_span(heap, p, 1024);
  const std::vector<void*> younger = fill_span(heap, p, 1024);  // parks `oldest`
  const std::vector<void*> current = fill_span(heap, p, 1024);  // parks `younger`
  const std::vector<void*> freed = free_threshold(p, younger);
  auto in_use_spans = [&] {
    std::size_t n = 0;
    for (const testing::SpanInfo& s : testing::snapshot(heap).spans) n += s.in_use;
    return n;
  };
  const std::size_t spans_before = in_use_spans();
  // `current` is exhausted with nothing pending, `oldest` has nothing to collect: the slots freed
  // in `younger` are next, lowest first, and no page leaves the page heap.
  for (void* obj : freed) EXPECT_EQ(p.allocate(1024), obj);
  EXPECT_EQ(in_use_spans(), spans_before);
  const testing::HeapSnapshot snap = testing::snapshot(heap);
  EXPECT_TRUE(test::span_containing(snap, oldest[0])->owned);
  EXPECT_FALSE(test::span_containing(snap, younger[0])->owned);  // the current span now
  EXPECT_TRUE(test::span_containing(snap, current[0])->owned);
  EXPECT_EQ(heap.stats().collections, 1u);
  EXPECT_VERIFIED(heap);
  for (const auto* v : {&oldest, &younger, &current})
    for (void* obj : *v) p.free(obj);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, AnotherPsFreesAreCollectedByTheOwner) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 128);
  const std::vector<void*> freed = free_threshold(heap.proc(1), v);  // under free_lock
  EXPECT_EQ(heap.proc(0).allocate(128), freed[0]);
  EXPECT_EQ(heap.stats().collections, 1u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, FreesIntoAFullCentralSpanMakeItARefillCandidate) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  std::vector<void*> first = fill_span(heap, heap.proc(0), 256);
  // P0 parks the full span, then evicts it to central's swept full list.
  test::evict_to_central(heap, heap.proc(0), 256, first[0]);
  auto where = [&](void* p) {
    const auto snap = testing::snapshot(heap);
    return test::span_containing(snap, p)->location;
  };
  ASSERT_EQ(where(first[0]), SpanLocation::central_full_swept);
  const std::size_t threshold = testing::collect_threshold(static_cast<unsigned>(first.size()));
  for (std::size_t i = 0; i + 1 < threshold; i++) heap.proc(1).free(first[i]);
  EXPECT_EQ(where(first[0]), SpanLocation::central_full_swept);  // not worth it yet
  heap.proc(1).free(first[threshold - 1]);
  EXPECT_EQ(where(first[0]), SpanLocation::central_partial_swept);  // INV-R1
  EXPECT_VERIFIED(heap);
  // P1's refill takes the span from the partial list and collects it (T9b).
  EXPECT_EQ(heap.proc(1).allocate(256), first[0]);
  EXPECT_EQ(where(first[0]), SpanLocation::cached);
  EXPECT_EQ(heap.stats().collections, 1u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, SpanUncachedWithPendingFreesGoesToPartial) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 512);
  free_threshold(heap.proc(1), v);
  testing::flush_all(heap);  // T6 with pending frees: partial, not full
  const auto snap = testing::snapshot(heap);
  EXPECT_EQ(test::span_containing(snap, v[1])->location, SpanLocation::central_partial_swept);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// INV-R1's move re-decides under central's lock. A free that found the span worth collecting
// waits, between its free_lock and central's lock, while another free moves the span, a refill
// collects and caches it, and its owner fills it and hands it back to the full list with nothing
// pending; the late move must leave it there (a full span with nothing to collect on the partial
// list breaks INV-L3, and the refill that pops it fails C11).
TEST(Reuse, ALateMoveToPartialRechecksTheSpan) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  const std::vector<void*> a = fill_span(heap, heap.proc(0), 256);
  const auto in_a = [&](void* p) { return std::find(a.begin(), a.end(), p) != a.end(); };
  // P0 parks A, then evicts it to central's swept full list.
  for (void* p : test::evict_to_central(heap, heap.proc(0), 256, a[0])) ASSERT_FALSE(in_a(p));
  const std::size_t threshold = testing::collect_threshold(static_cast<unsigned>(a.size()));
  ASSERT_LT(threshold + 1, a.size());
  for (std::size_t i = 0; i + 1 < threshold; i++) heap.proc(1).free(a[i]);
  bool interleaved = false;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::free_move_to_partial || interleaved) return;
    interleaved = true;
    heap.proc(0).free(a[threshold]);  // moves A to partial first
    // P0 uses up its span, then its refill collects A (T9b): threshold + 1 free slots.
    void* p = nullptr;
    for (std::size_t i = 0; i < 4 * a.size() && !in_a(p); i++) p = heap.proc(0).allocate(256);
    ASSERT_TRUE(in_a(p));
    for (std::size_t i = 0; i < threshold; i++) ASSERT_TRUE(in_a(heap.proc(0).allocate(256)));
    // A is full: P0 parks it, and once it has exhausted max_owned_spans() fresh spans after it,
    // evicts it to the full list (T6). (No snapshot here: P1 is held by the waiting free.)
    for (std::size_t i = 0; i < testing::max_owned_spans() * a.size() + 1; i++)
      ASSERT_FALSE(in_a(heap.proc(0).allocate(256)));
  });
  heap.proc(1).free(a[threshold - 1]);  // worth collecting: waits in the hook, then moves
  testing::set_protocol_hook(heap, {});
  ASSERT_TRUE(interleaved);
  const auto snap = testing::snapshot(heap);
  EXPECT_EQ(test::span_containing(snap, a[0])->location, SpanLocation::central_full_swept);
  EXPECT_VERIFIED(heap);
  // Every later refill finds a free slot in the span it takes.
  for (std::size_t i = 0; i < 2 * a.size(); i++) EXPECT_FALSE(in_a(heap.proc(1).allocate(256)));
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, ChurnNeedsNoCycleAndStaysSmall) {
  testing::RecordingHandler rec;
  Options o = with_reuse(1, rec, ReusePolicy::owner);
  o.gc_percent = 50;
  Heap heap(o);
  std::vector<void*> ring(1000, nullptr);
  for (int i = 0; i < 200000; i++) {
    void*& slot = ring[static_cast<std::size_t>(i * 7919) % ring.size()];
    heap.free(slot);
    slot = heap.allocate(static_cast<std::size_t>(16 + (i % 25) * 16));
  }
  const Stats s = heap.stats();
  EXPECT_EQ(s.cycles, 0u);  // collection reclaims: the heap never grows past its trigger
  EXPECT_LT(s.span_bytes, std::size_t{2} << 20);
  EXPECT_GT(s.collected_objects, 100000u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, PacingStillStartsCyclesWhenTheHeapGrows) {
  testing::RecordingHandler rec;
  Options o = with_reuse(1, rec, ReusePolicy::owner);
  o.gc_percent = 50;
  Heap heap(o);
  std::vector<void*> keep;
  for (int i = 0; i < 100000; i++) keep.push_back(heap.allocate(256));  // 25 MiB, nothing freed
  EXPECT_GE(heap.stats().cycles, 2u);
  for (void* p : keep) heap.free(p);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, LargeObjectPagesReturnAtFreeUnderOwner) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  void* a = heap.allocate(100000);
  const std::size_t in_use = heap.stats().span_bytes;
  heap.free(a);
  const Stats s = heap.stats();
  EXPECT_EQ(s.span_bytes + 106496u, in_use);  // 13 pages went back at once (T10)
  EXPECT_EQ(s.large_frees, 1u);
  EXPECT_EQ(s.pending_frees, 0u);
  heap.free(a);
  ASSERT_EQ(rec.count(), 1u);
  EXPECT_EQ(rec.last()->kind, ErrorKind::double_free);
  EXPECT_EQ(heap.allocate(100000), a);  // the same pages are the first fit again
  EXPECT_VERIFIED(heap);
}

TEST(Reuse, LargeObjectWaitsForTheSweepUnderNextCycle) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::next_cycle));
  void* a = heap.allocate(100000);
  const std::size_t in_use = heap.stats().span_bytes;
  heap.free(a);
  EXPECT_EQ(heap.stats().span_bytes, in_use);
  EXPECT_EQ(heap.stats().pending_frees, 1u);
  EXPECT_NE(heap.allocate(100000), a);
  EXPECT_EQ(heap.stats().large_frees, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// The guarantee of docs/design.md "Bad input": a double free is reported as double_free while the
// slot is pending or reclaimed and not yet handed out again, under both policies.
TEST(Reuse, DoubleFreeOfACollectedSlotIsADoubleFree) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 48);
  const std::vector<void*> freed = free_threshold(heap.proc(0), v);
  EXPECT_EQ(heap.proc(0).allocate(48), freed[0]);  // collects them all, hands out the first
  heap.proc(0).free(freed[1]);                     // collected, not handed out again
  ASSERT_EQ(rec.count(), 1u);
  EXPECT_EQ(rec.last()->kind, ErrorKind::double_free);
  EXPECT_NE(rec.last()->message.find("reclaimed"), std::string::npos);
  EXPECT_VERIFIED(heap);
}

// The honest limit: once a collected slot is handed out again, freeing the old pointer frees the
// new object, and no allocator can tell the two apart with raw pointers. The heap stays intact.
TEST(Reuse, DoubleFreeAfterReuseIsIndistinguishableFromAValidFree) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 48);
  const std::vector<void*> freed = free_threshold(heap.proc(0), v);
  EXPECT_EQ(heap.proc(0).allocate(48), freed[0]);  // Y takes X's slot
  heap.proc(0).free(freed[0]);                     // "free X again" frees Y: no report
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

TEST(Reuse, WriteAfterFreeIsCaughtWhenACollectedSlotIsReallocated) {
  testing::RecordingHandler rec;
  Options o = with_reuse(1, rec, ReusePolicy::owner);
  o.debug.clobber_freed = true;
  Heap heap(o);
  std::vector<void*> v = fill_span(heap, heap.proc(0), 64);
  const std::vector<void*> freed = free_threshold(heap.proc(0), v);
  // Collection clobbers every freed slot; a write into one after that is found when it comes back.
  EXPECT_EQ(heap.proc(0).allocate(64), freed[0]);
  static_cast<unsigned char*>(freed[1])[63] = 1;  // the last byte of the object
  EXPECT_EQ(heap.proc(0).allocate(64), freed[1]);
  ASSERT_EQ(rec.count(), 1u);
  EXPECT_EQ(rec.last()->kind, ErrorKind::corruption);
  EXPECT_NE(rec.last()->message.find("byte 63"), std::string::npos);
}

// calloc's contract holds for slots reused without a cycle: collection marks the span dirty.
TEST(Reuse, AllocateZeroedClearsCollectedSlots) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(1, rec, ReusePolicy::owner));
  for (std::size_t size : {std::size_t{48}, std::size_t{3000}, std::size_t{100000}}) {
    std::vector<void*> v = size > max_small_size ? std::vector<void*>{heap.proc(0).allocate(size)}
                                                 : fill_span(heap, heap.proc(0), size);
    for (void* p : v) std::memset(p, 0x5A, size);
    for (void* p : v) heap.proc(0).free(p);
    for (std::size_t i = 0; i < v.size(); i++) {
      const auto* p = static_cast<const unsigned char*>(heap.allocate_zeroed(size));
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(std::count(p, p + size, 0), static_cast<std::ptrdiff_t>(size)) << size;
    }
  }
  EXPECT_GT(heap.stats().collections, 0u);
  EXPECT_EQ(rec.count(), 0u);
}

// Two threads free the same object at once, again and again: exactly one wins each time, the
// other is reported as double_free, whichever path (owner or locked) each one took.
TEST(Reuse, ConcurrentDoubleFreeHasExactlyOneWinner) {
  for (ReusePolicy reuse : {ReusePolicy::owner, ReusePolicy::next_cycle}) {
    testing::RecordingHandler rec;
    Options o = with_reuse(2, rec, reuse);
    o.checks = CheckLevel::debug;
    Heap heap(o);
    constexpr int rounds = 2000;
    std::vector<void*> objs;
    for (int i = 0; i < rounds; i++)
      objs.push_back(heap.proc(static_cast<unsigned>(i % 2)).allocate(32 + (i % 4) * 1000));
    std::atomic<int> arrived{0};
    auto freer = [&](unsigned p) {
      for (int i = 0; i < rounds; i++) {
        // Both threads reach round i before either frees: the frees race.
        arrived.fetch_add(1, std::memory_order_acq_rel);
        // Spin briefly, then yield: on a loaded machine the other thread may be descheduled, and
        // a spin that never yields made this test take a minute under TSan.
        for (unsigned spins = 0; arrived.load(std::memory_order_acquire) < 2 * (i + 1); spins++)
          if (spins > 1000) std::this_thread::yield();
        heap.proc(p).free(objs[static_cast<std::size_t>(i)]);
        // Interleave collections: the other P allocates into what was freed.
        if (i % 16 == 0) heap.proc(p).free(heap.proc(p).allocate(32));
      }
    };
    std::thread t0(freer, 0u), t1(freer, 1u);
    t0.join();
    t1.join();
    // When the loser's free raced with the free of the P caching the span, it is found when that
    // P merges the other Ps' frees: a flush merges every cached span.
    testing::flush_all(heap);
    std::size_t doubles = 0;
    for (const ErrorReport& r : rec.take()) {
      EXPECT_EQ(r.kind, ErrorKind::double_free) << r.message;
      doubles += r.kind == ErrorKind::double_free;
    }
    EXPECT_EQ(doubles, static_cast<std::size_t>(rounds));
    EXPECT_VERIFIED(heap);
  }
}

}  // namespace
}  // namespace spanheap
