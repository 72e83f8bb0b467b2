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
  heap.proc(0).free(v[3]);
  heap.proc(0).free(v[7]);
  // T9a: the span is full and ours; the next two allocations are its collected slots.
  std::set<void*> got{heap.proc(0).allocate(64), heap.proc(0).allocate(64)};
  EXPECT_EQ(got, (std::set<void*>{v[3], v[7]}));
  const Stats s = heap.stats();
  EXPECT_EQ(s.collections, 1u);
  EXPECT_EQ(s.collected_objects, 2u);
  EXPECT_EQ(s.pending_frees, 0u);
  EXPECT_EQ(s.cycles, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, AnotherPsFreeIsCollectedByTheOwner) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 128);
  heap.proc(1).free(v[0]);  // under free_lock: P1 does not own the span
  EXPECT_EQ(heap.proc(0).allocate(128), v[0]);
  EXPECT_EQ(heap.stats().collections, 1u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, AFreeIntoAFullCentralSpanMakesItARefillCandidate) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  std::vector<void*> first = fill_span(heap, heap.proc(0), 256);
  heap.proc(0).allocate(256);  // refill: the full span goes to central's swept full list
  auto where = [&](void* p) {
    const auto snap = testing::snapshot(heap);
    return test::span_containing(snap, p)->location;
  };
  ASSERT_EQ(where(first[0]), SpanLocation::central_full_swept);
  heap.proc(1).free(first[5]);
  EXPECT_EQ(where(first[5]), SpanLocation::central_partial_swept);  // INV-R1
  EXPECT_VERIFIED(heap);
  // P1's refill takes the span from the partial list and collects it (T9b).
  EXPECT_EQ(heap.proc(1).allocate(256), first[5]);
  EXPECT_EQ(where(first[5]), SpanLocation::cached);
  EXPECT_EQ(heap.stats().collections, 1u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Reuse, SpanUncachedWithPendingFreesGoesToPartial) {
  testing::RecordingHandler rec;
  Heap heap(with_reuse(2, rec, ReusePolicy::owner));
  std::vector<void*> v = fill_span(heap, heap.proc(0), 512);
  heap.proc(1).free(v[1]);
  testing::flush_all(heap);  // T6 with a pending free: partial, not full
  const auto snap = testing::snapshot(heap);
  EXPECT_EQ(test::span_containing(snap, v[1])->location, SpanLocation::central_partial_swept);
  EXPECT_VERIFIED(heap);
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
  heap.proc(0).free(v[2]);
  heap.proc(0).free(v[4]);
  void* again = heap.proc(0).allocate(48);  // collects both, hands out one of them
  void* still_free = again == v[2] ? v[4] : v[2];
  heap.proc(0).free(still_free);
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
  heap.proc(0).free(v[2]);
  EXPECT_EQ(heap.proc(0).allocate(48), v[2]);  // Y takes X's slot
  heap.proc(0).free(v[2]);                     // "free X again" frees Y: no report
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

TEST(Reuse, WriteAfterFreeIsCaughtWhenACollectedSlotIsReallocated) {
  testing::RecordingHandler rec;
  Options o = with_reuse(1, rec, ReusePolicy::owner);
  o.debug.clobber_freed = true;
  Heap heap(o);
  std::vector<void*> v = fill_span(heap, heap.proc(0), 64);
  heap.proc(0).free(v[9]);
  heap.proc(0).free(v[10]);
  // Collection clobbers both slots; a write into one after that is found when it comes back.
  void* first = heap.proc(0).allocate(64);
  void* other = first == v[9] ? v[10] : v[9];
  static_cast<unsigned char*>(other)[63] = 1;  // the last byte of the object
  heap.proc(0).allocate(64);
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
        while (arrived.load(std::memory_order_acquire) < 2 * (i + 1)) {
        }
        heap.proc(p).free(objs[static_cast<std::size_t>(i)]);
        // Interleave collections: the other P allocates into what was freed.
        if (i % 16 == 0) heap.proc(p).free(heap.proc(p).allocate(32));
      }
    };
    std::thread t0(freer, 0u), t1(freer, 1u);
    t0.join();
    t1.join();
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
