// The verifier must be able to fail: each test corrupts one piece of heap metadata, checks that
// verify() names the broken invariant, then repairs it and checks verify() is clean again.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "central.hpp"
#include "heap_state.hpp"
#include "page_heap.hpp"
#include "page_map.hpp"
#include "test_util.hpp"

namespace spanheap::detail {
namespace {

using test::names;

struct ValidateTest : ::testing::Test {
  testing::RecordingHandler rec;
  Heap heap{test::deterministic(2, rec)};
  Span* span_of_ptr(void* p) { return span_of(heap.state(), reinterpret_cast<std::uintptr_t>(p)); }
  void TearDown() override {
    EXPECT_TRUE(heap.verify().ok());
    EXPECT_EQ(rec.count(), 0u);
  }
};

TEST_F(ValidateTest, AllocCountOutOfSyncIsINV_A2) {
  Span* s = span_of_ptr(heap.allocate(64));
  s->alloc_count++;
  EXPECT_TRUE(names(heap.verify(), "INV-A2"));
  s->alloc_count--;
}

TEST_F(ValidateTest, WrongSweepgenForACachedSpanIsINV_S3) {
  Span* s = span_of_ptr(heap.proc(1).allocate(64));
  const std::uint32_t g = s->sweepgen.load();
  s->sweepgen.store(g - 3);  // claims "swept, not cached" while a cache holds it
  EXPECT_TRUE(names(heap.verify(), "INV-S3"));
  s->sweepgen.store(g);
}

TEST_F(ValidateTest, ImpossibleSweepgenIsINV_S1) {
  void* big = heap.allocate(100000);
  Span* s = span_of_ptr(big);
  const std::uint32_t g = s->sweepgen.load();
  s->sweepgen.store(g + 2);  // sg+2 never occurs
  EXPECT_TRUE(names(heap.verify(), "INV-S1"));
  s->sweepgen.store(g);
}

TEST_F(ValidateTest, ASpanInNoStructureIsINV_L1) {
  void* big = heap.allocate(100000);
  Span* s = span_of_ptr(big);
  Central& c = heap.state().central[0];
  SpanList* list = s->list.load();
  {
    LockGuard g(c.mu);
    list_remove(*list, s);
  }
  EXPECT_TRUE(names(heap.verify(), "INV-L1"));
  {
    LockGuard g(c.mu);
    list_push_back(*list, s);
  }
}

TEST_F(ValidateTest, StaleCounterMismatchIsReported) {
  heap.state().sweep.stale_procs.fetch_add(1);
  EXPECT_TRUE(names(heap.verify(), "sweep_state"));
  heap.state().sweep.stale_procs.fetch_sub(1);
}

TEST_F(ValidateTest, StatsThatDisagreeWithSpansAreINV_C) {
  heap.allocate(64);
  Cache& c = heap.state().proc(0).cache;
  c.allocs.fetch_add(1);
  EXPECT_TRUE(names(heap.verify(), "INV-C"));
  c.allocs.fetch_sub(1);
}

TEST_F(ValidateTest, APendingFreeOfAnUnallocatedSlotIsReported) {
  Span* s = span_of_ptr(heap.allocate(64));
  s->bits[0].free.fetch_or(std::uint64_t{1} << 40);
  EXPECT_TRUE(names(heap.verify(), "free_bits"));
  s->bits[0].free.fetch_and(~(std::uint64_t{1} << 40));
}

// The census walks only the exact free lists the page heap's bitmap marks, and only the classes
// that have had spans: a run or span those bits hide is placed nowhere and reported, and a bit
// on an empty list is reported too.
TEST_F(ValidateTest, FreeRunsOnAListTheBitmapHidesAreReported) {
  heap.allocate(64);  // commits a run of pages and carves one span off it: the rest is free
  PageHeap& ph = heap.state().pages;
  std::size_t n = 1;
  std::uint64_t bit = 0;
  {
    LockGuard g(ph.mu);
    while (n < free_list_exact && ph.free_runs[0][n].first == nullptr) n++;
    ASSERT_LT(n, free_list_exact) << "the heap has no exact-size free run";
    bit = std::uint64_t{1} << (n % 64);
    ph.nonempty[0][n / 64] &= ~bit;
  }
  EXPECT_TRUE(names(heap.verify(), "INV-L1"));
  LockGuard g(ph.mu);
  ph.nonempty[0][n / 64] |= bit;
}

TEST_F(ValidateTest, ABitmapBitOnAnEmptyFreeListIsReported) {
  PageHeap& ph = heap.state().pages;
  std::size_t n = 1;
  std::uint64_t bit = 0;
  {
    LockGuard g(ph.mu);
    while (ph.free_runs[0][n].first != nullptr) n++;
    bit = std::uint64_t{1} << (n % 64);
    ph.nonempty[0][n / 64] |= bit;
  }
  const VerifyResult r = heap.verify();
  EXPECT_TRUE(names(r, "page_heap"));
  EXPECT_NE(r.to_string().find(fmt::format("free list of {}-page runs", n)), std::string::npos)
      << r.to_string();
  LockGuard g(ph.mu);
  ph.nonempty[0][n / 64] &= ~bit;
}

TEST_F(ValidateTest, SpansOfAClassMarkedUnusedAreReported) {
  Span* listed = span_of_ptr(heap.allocate(64));  // a central or cached span of 64's class
  Span* cached = span_of_ptr(heap.proc(1).allocate(64));
  const unsigned c = listed->cls();
  ASSERT_EQ(cached->cls(), c);
  std::atomic<std::uint64_t>& word = heap.state().classes_used[c / 64];
  const std::uint64_t bit = std::uint64_t{1} << (c % 64);
  ASSERT_NE(word.load() & bit, 0u);
  word.fetch_and(~bit);
  EXPECT_TRUE(names(heap.verify(), "INV-L1"));
  word.fetch_or(bit);
}

TEST_F(ValidateTest, APageOfALargeSpanThatMapsElsewhereIsReported) {
  Span* s = span_of_ptr(heap.allocate(100000));  // 13 pages
  ASSERT_GE(s->npages, 3u);
  Span* other = span_of_ptr(heap.allocate(64));
  const std::size_t first = (s->start - s->arena->base) >> page_shift;
  for (const std::size_t k : {std::size_t{1}, s->npages / 2, s->npages - 1}) {
    s->arena->spans[first + k].store(other);
    const VerifyResult r = heap.verify();
    EXPECT_TRUE(names(r, "page_map"));
    EXPECT_NE(r.to_string().find(fmt::format("page {} maps elsewhere", k)), std::string::npos)
        << r.to_string();
    s->arena->spans[first + k].store(s);
  }
}

TEST(Validate, AnUncommittedPageThatMapsToASpanIsReported) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.arena_bytes = std::size_t{8} << 20;  // 1024 pages: an uncommitted tail of several blocks
  Heap heap{o};
  Span* s = span_of(heap.state(), reinterpret_cast<std::uintptr_t>(heap.allocate(64)));
  Arena& a = *s->arena;
  ASSERT_LT(a.committed_pages + 300, a.npages);
  // The verifier scans the uncommitted tail a block at a time: a stray entry is found at the
  // first uncommitted page, inside a later block and at the very last page.
  for (const std::size_t page : {a.committed_pages, a.committed_pages + 300, a.npages - 1}) {
    a.spans[page].store(s);
    const VerifyResult r = heap.verify();
    EXPECT_TRUE(names(r, "page_map")) << "page " << page;
    EXPECT_NE(r.to_string().find(fmt::format("uncommitted page {} ", page)), std::string::npos)
        << r.to_string();
    a.spans[page].store(nullptr);
  }
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

// A free run listed under the other kind of arena (PageHeap: huge pages serve small objects only)
// is reported: moved by hand from the lists of kind 0 to those of kind 1.
TEST_F(ValidateTest, AFreeRunOnTheListsOfTheOtherKindIsReported) {
  heap.allocate(64);  // commits a run of pages and carves one span off it: the rest is free
  PageHeap& ph = heap.state().pages;
  std::size_t n = 1;
  {
    LockGuard g(ph.mu);
    while (n < free_list_exact && ph.free_runs[0][n].first == nullptr) n++;
    ASSERT_LT(n, free_list_exact) << "the heap has no exact-size free run";
    std::swap(ph.free_runs[0][n], ph.free_runs[1][n]);
    std::swap(ph.nonempty[0][n / 64], ph.nonempty[1][n / 64]);
  }
  const VerifyResult r = heap.verify();
  EXPECT_NE(r.to_string().find("of an arena not of huge pages on the lists of kind 1"),
            std::string::npos)
      << r.to_string();
  LockGuard g(ph.mu);
  std::swap(ph.free_runs[0][n], ph.free_runs[1][n]);
  std::swap(ph.nonempty[0][n / 64], ph.nonempty[1][n / 64]);
}

TEST(SpanLocationNames, EachLocationHasItsOwnName) {
  using testing::SpanLocation;
  EXPECT_STREQ(to_string(SpanLocation::cached), "cached");
  EXPECT_STREQ(to_string(SpanLocation::central_partial_swept), "central_partial_swept");
  EXPECT_STREQ(to_string(SpanLocation::central_partial_unswept), "central_partial_unswept");
  EXPECT_STREQ(to_string(SpanLocation::central_full_swept), "central_full_swept");
  EXPECT_STREQ(to_string(SpanLocation::central_full_unswept), "central_full_unswept");
  EXPECT_STREQ(to_string(SpanLocation::page_heap_free), "page_heap_free");
  EXPECT_STREQ(to_string(SpanLocation::nowhere), "nowhere");
}

}  // namespace
}  // namespace spanheap::detail
