// Frees into a span another P caches (docs/design.md "Reuse", INV-S6): the caching P writes the
// span's `free` bits without a lock, the others' frees go to `remote_bits` under free_lock, and the
// owner merges them into `free` when it collects or uncaches the span. A double free is still
// reported at the call whenever one free came before the other; only two frees that truly race
// (the owner's and another P's, each past its check before the other's bit is set) are reported
// at the merge. These tests drive each order and the race itself, by setting the bits as the two
// racing frees would.
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <cstdint>

#include "heap_state.hpp"
#include "page_map.hpp"
#include "span.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

Options two_procs(testing::RecordingHandler& rec) {
  Options o = test::deterministic(2, rec);
  o.reuse = ReusePolicy::owner;
  o.binding = ProcBinding::off;  // every call states its P
  return o;
}

detail::Span& span_of(Heap& heap, const void* p) {
  detail::Span* s = detail::span_of(heap.state(), reinterpret_cast<std::uintptr_t>(p));
  EXPECT_NE(s, nullptr);
  return *s;
}

std::uint64_t remote_word(Heap& heap, const void* p, std::uint64_t& bit) {
  detail::Span& s = span_of(heap, p);
  const auto i =
      static_cast<unsigned>((reinterpret_cast<std::uintptr_t>(p) - s.start) / s.elem_size);
  bit = std::uint64_t{1} << (i % 64);
  return s.remote_bits[i / 64].load(std::memory_order_relaxed);
}

TEST(RemoteFrees, AnotherPsFreeGoesToRemoteBitsAndIsMergedAtTheFlush) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* x = heap.proc(1).allocate(64);  // P1 caches x's span
  void* keep = heap.proc(1).allocate(64);
  heap.proc(0).free(x);
  std::uint64_t bit = 0;
  EXPECT_NE(remote_word(heap, x, bit) & bit, 0u) << "P0's free is not in the remote bits";
  EXPECT_TRUE(heap.find_object(x).pending_free);
  EXPECT_VERIFIED(heap);
  testing::flush_all(heap);  // uncaches: the merge
  EXPECT_EQ(remote_word(heap, x, bit), 0u) << "the uncache left remote bits (INV-S6)";
  EXPECT_TRUE(heap.find_object(x).pending_free) << "the merge lost P0's free";
  EXPECT_EQ(heap.stats().frees, 1u);
  EXPECT_EQ(rec.count(), 0u);
  heap.free(keep);
  EXPECT_VERIFIED(heap);
}

// x lives in a span P1 caches; P `first` frees it, then P `second` frees it again: the second
// free is a double free reported at the call, and the merge reports nothing more.
void second_free_is_reported_at_the_call(unsigned first, unsigned second, const char* who) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* x = heap.proc(1).allocate(64);
  void* keep = heap.proc(1).allocate(64);
  heap.proc(first).free(x);
  heap.proc(second).free(x);
  ASSERT_EQ(rec.count(), 1u) << who << "'s second free of x was not reported at the call";
  EXPECT_EQ(rec.take()[0].kind, ErrorKind::double_free);
  testing::flush_all(heap);
  EXPECT_EQ(rec.count(), 0u) << "the merge reported a double free already reported";
  EXPECT_EQ(heap.stats().frees, 1u);
  heap.free(keep);
  EXPECT_VERIFIED(heap);
}

TEST(RemoteFrees, AnotherPsFreeThenTheOwnersIsADoubleFreeAtTheCall) {
  second_free_is_reported_at_the_call(0, 1, "the owner (it must see the remote bit)");
}

TEST(RemoteFrees, TheOwnersFreeThenAnotherPsIsADoubleFreeAtTheCall) {
  second_free_is_reported_at_the_call(1, 0, "another P (it must see the owner's bit)");
}

// The same through the owner's fast path (Heap::free from the thread whose P caches the span,
// bound as by default): its one compare of the owner word sees the remote flag and sends the free
// to the path that reads the remote bits, which finds the other P's free.
TEST(RemoteFrees, AnotherPsFreeThenTheOwnersFastFreeIsADoubleFreeAtTheCall) {
  for (ProcBinding binding : {ProcBinding::automatic, ProcBinding::off}) {
    testing::RecordingHandler rec;
    Options o = two_procs(rec);
    o.binding = binding;
    Heap heap(o);
    void* keep = heap.allocate(64);
    void* x = heap.allocate(64);
    const int owner = test::span_containing(testing::snapshot(heap), x)->cache_proc;
    ASSERT_GE(owner, 0);
    heap.proc(owner == 0 ? 1 : 0).free(x);  // another P: the remote bit
    // The snapshot's stop revoked the binding: bind again (other classes), so the free below takes
    // the bound fast path.
    std::uint64_t rebinding_frees = 0;
    for (; binding != ProcBinding::off && rebinding_frees < 4096 &&
           !testing::proc_bound(heap, static_cast<unsigned>(owner));
         rebinding_frees++)
      heap.free(heap.allocate(16));
    if (binding != ProcBinding::off && testing::binding(heap) != ProcBinding::off) {
      ASSERT_TRUE(testing::proc_bound(heap, static_cast<unsigned>(owner)));
    }
    const std::uint64_t held = testing::held_frees(heap);
    heap.free(x);
    ASSERT_EQ(rec.count(), 1u) << "the owner's fast free of x after another P's was not reported";
    EXPECT_EQ(rec.take()[0].kind, ErrorKind::double_free);
    EXPECT_GT(testing::held_frees(heap), held) << "the fast path took a span with remote frees";
    testing::flush_all(heap);
    EXPECT_EQ(rec.count(), 0u) << "the merge reported a double free already reported";
    EXPECT_EQ(heap.stats().frees, 1u + rebinding_frees);
    heap.free(keep);
    EXPECT_VERIFIED(heap);
  }
}

// The race: P0's free passed its check and set the remote bit while P1's own free of the same
// object passed its check before it. Each free succeeded and was counted; the merge finds the slot
// in both words, reports it once and reclaims it once. `merge` is what makes P1 merge: a flush
// (uncache) or a collection when its span runs out; it returns how many valid frees it made.
void raced_double_free_is_reported_at_the_merge(std::uint64_t (*merge)(Heap&, void*)) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* x = heap.proc(1).allocate(64);
  void* keep = heap.proc(1).allocate(64);
  heap.proc(0).free(x);
  std::uint64_t bit = 0;
  detail::Span& s = span_of(heap, x);
  const auto i =
      static_cast<unsigned>((reinterpret_cast<std::uintptr_t>(x) - s.start) / s.elem_size);
  ASSERT_NE(remote_word(heap, x, bit) & bit, 0u);
  s.remote_bits[i / 64].fetch_and(~bit);  // P1's check runs before P0's bit is visible...
  heap.proc(1).free(x);
  s.remote_bits[i / 64].fetch_or(bit);  // ...and P0's bit lands after it
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);  // two frees counted, two pending bits: consistent until the merge
  const std::uint64_t frees_before = heap.stats().frees;  // x's two
  const std::uint64_t frees_made = merge(heap, x);
  const auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u) << "the merge did not report the raced double free exactly once";
  EXPECT_EQ(reports[0].kind, ErrorKind::double_free);
  EXPECT_EQ(reports[0].ptr, x);
  EXPECT_EQ(heap.stats().frees, frees_before - 1 + frees_made)
      << "the raced second free still counts as a free";
  EXPECT_FALSE(heap.find_object(x).kind == PointerKind::object_start &&
               !heap.find_object(x).pending_free)
      << "x is live again after the merge";
  heap.free(keep);
  EXPECT_VERIFIED(heap);
}

TEST(RemoteFrees, ARacedDoubleFreeIsReportedWhenTheOwnerUncachesTheSpan) {
  raced_double_free_is_reported_at_the_merge([](Heap& heap, void*) -> std::uint64_t {
    testing::flush_all(heap);
    return 0;
  });
}

TEST(RemoteFrees, ARacedDoubleFreeIsReportedWhenTheOwnerCollectsTheSpan) {
  raced_double_free_is_reported_at_the_merge([](Heap& heap, void* x) -> std::uint64_t {
    // Fill x's span, so that P1 parks it, free half of it through P1 (worth collecting), and
    // allocate until the span P1 took instead runs out too: P1 collects x's span, its oldest.
    const testing::HeapSnapshot snap = testing::snapshot(heap);
    const unsigned nelems = test::span_containing(snap, x)->nelems;
    std::vector<void*> v;
    for (unsigned k = 0; k < nelems; k++) v.push_back(heap.proc(1).allocate(64));
    for (unsigned k = 0; k < nelems / 2; k++) heap.proc(1).free(v[k]);
    for (unsigned k = 0; k < nelems / 2; k++) v[k] = heap.proc(1).allocate(64);
    for (unsigned k = 0; k < nelems; k++) v.push_back(heap.proc(1).allocate(64));
    for (void* p : v) heap.proc(1).free(p);
    return nelems / 2 + v.size();
  });
}

// INV-S6 is checked: remote bits on a span no P caches are frees nobody will merge.
TEST(RemoteFrees, RemoteBitsOnAnUncachedSpanAreInvS6) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* x = heap.proc(1).allocate(64);
  void* y = heap.proc(1).allocate(64);
  testing::flush_all(heap);  // x's span goes to central
  std::uint64_t bit = 0;
  remote_word(heap, y, bit);
  detail::Span& s = span_of(heap, y);
  const auto i =
      static_cast<unsigned>((reinterpret_cast<std::uintptr_t>(y) - s.start) / s.elem_size);
  s.remote_bits[i / 64].fetch_or(bit);
  const VerifyResult vr = heap.verify();
  EXPECT_FALSE(vr.ok());
  EXPECT_NE(vr.to_string().find("INV-S6"), std::string::npos) << vr.to_string();
  s.remote_bits[i / 64].fetch_and(~bit);
  heap.free(x);
  heap.free(y);
  EXPECT_VERIFIED(heap);
}

}  // namespace
}  // namespace spanheap
