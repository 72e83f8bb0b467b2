// The verifier must be able to fail: each test corrupts one piece of heap metadata, checks that
// verify() names the broken invariant, then repairs it and checks verify() is clean again.
#include <gtest/gtest.h>

#include <algorithm>

#include "central.hpp"
#include "heap_state.hpp"
#include "page_heap.hpp"
#include "page_map.hpp"
#include "test_util.hpp"

namespace spanheap::detail {
namespace {

bool names(const VerifyResult& r, const std::string& id) {
  return std::any_of(r.violations.begin(), r.violations.end(),
                     [&](const Violation& v) { return v.invariant == id; });
}

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
  s->free_bits[0].fetch_or(std::uint64_t{1} << 40);
  EXPECT_TRUE(names(heap.verify(), "free_bits"));
  s->free_bits[0].fetch_and(~(std::uint64_t{1} << 40));
}

}  // namespace
}  // namespace spanheap::detail
