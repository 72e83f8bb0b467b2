// Tests for span: next_free_index against a naive scan, the sweep's bit equations (INV-A1..A4)
// and the allocated/pending/reclaimed classification, on spans built directly.
#include "span.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <random>
#include <vector>

#include "heap_state.hpp"
#include "size_classes.hpp"
#include "test_util.hpp"

namespace spanheap::detail {
namespace {

struct SpanTest : ::testing::Test {
  testing::RecordingHandler rec;
  Heap heap{test::deterministic(1, rec)};
  HeapState& h = heap.state();
  Span span;

  void init(unsigned cls) {
    span.start = 0x100000;
    span.npages = size_class(cls).npages;
    span_init_small(span, cls);
  }
  // Naive model: the first slot ≥ free_index that is not allocated.
  std::uint32_t naive_next() const {
    for (std::uint32_t i = span.free_index.load(); i < span.nelems; i++)
      if (!(span.bits[i / 64].alloc.load() >> (i % 64) & 1)) return i;
    return span.nelems;
  }
  void TearDown() override { EXPECT_EQ(rec.count(), 0u); }
};

TEST_F(SpanTest, NextFreeIndexMatchesANaiveScanUnderRandomSweeps) {
  std::mt19937 rng(42);
  for (unsigned cls = 1; cls < num_size_classes(); cls += 3) {
    init(cls);
    for (int round = 0; round < 6; round++) {
      // Allocate a random number of slots.
      const std::uint32_t n = rng() % (span.nelems + 1);
      for (std::uint32_t k = 0; k < n; k++) {
        const std::uint32_t want = naive_next();
        const std::uint32_t got = next_free_index(span);
        ASSERT_EQ(got, want) << "class " << cls << " round " << round;
        if (got == span.nelems) break;
        span.alloc_count++;
      }
      ASSERT_EQ(count_allocated(span), span.alloc_count);
      // Free a random subset of allocated slots, then sweep.
      std::uint32_t freed = 0;
      for (std::uint32_t i = 0; i < span.nelems; i++) {
        if (slot_allocated(span, i) && rng() % 3 == 0) {
          span.bits[i / 64].free.fetch_or(std::uint64_t{1} << (i % 64));
          freed++;
        }
      }
      std::uint64_t out[bitmap_words];
      const std::uint32_t before = span.alloc_count;
      ASSERT_EQ(sweep_bits(h, span, out), freed);
      // INV-A4: free_index reset, count = popcount, cache mirrors word 0, no pending bits.
      EXPECT_EQ(span.free_index.load(), 0u);
      EXPECT_EQ(span.alloc_count, before - freed);
      EXPECT_EQ(count_allocated(span), span.alloc_count);
      EXPECT_EQ(count_pending(span), 0u);
      EXPECT_EQ(span.alloc_cache, ~span.bits[0].alloc.load());
      for (unsigned w = 0; w < bitmap_words; w++) EXPECT_EQ(out[w] & span.bits[w].alloc.load(), 0u);
    }
  }
}

TEST_F(SpanTest, ReclaimedBitsRememberFreedSlots) {
  init(size_to_class(64, 16));
  for (int i = 0; i < 3; i++) {
    next_free_index(span);
    span.alloc_count++;
  }
  span.bits[0].free.fetch_or(0b010);
  std::uint64_t out[bitmap_words];
  sweep_bits(h, span, out);
  EXPECT_TRUE(slot_allocated(span, 0));
  EXPECT_FALSE(slot_allocated(span, 1));
  EXPECT_TRUE(slot_reclaimed(span, 1));
  EXPECT_FALSE(slot_reclaimed(span, 5));
  EXPECT_EQ(first_free_slot(span, 0), 1u);
  EXPECT_EQ(first_free_slot(span, 2), 3u);
}

TEST_F(SpanTest, SweepRejectsAPendingFreeOfAnUnallocatedSlot) {
  init(size_to_class(64, 16));
  span.bits[0].free.fetch_or(0b100);  // corrupted: slot 2 was never allocated
  std::uint64_t out[bitmap_words];
  sweep_bits(h, span, out);
  auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ErrorKind::corruption);
  EXPECT_NE(reports[0].message.find("pending free of an unallocated slot"), std::string::npos);
}

TEST_F(SpanTest, LargeSpanHoldsOneObject) {
  span.start = 0x200000;
  span.npages = 5;
  span_init_large(span);
  EXPECT_EQ(span.nelems, 1u);
  EXPECT_EQ(span.alloc_count, 1u);
  EXPECT_EQ(span.elem_size, 5 * page_size);
  EXPECT_TRUE(slot_allocated(span, 0));
  EXPECT_EQ(slot_of(span, span.start + 12345), 0u);
  span.bits[0].free.fetch_or(1);
  std::uint64_t out[bitmap_words];
  EXPECT_EQ(sweep_bits(h, span, out), 1u);
  EXPECT_EQ(span.alloc_count, 0u);
}

}  // namespace
}  // namespace spanheap::detail

namespace spanheap::detail {
namespace {

// The bit counts behind alloc_count (INV-A2) and worth_collecting: exact for every bit pattern
// shape (single bits, runs, the extremes) and random words.
TEST(Popcount, MatchesStdPopcount) {
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> words{0, ~std::uint64_t{0}, 0x8000000000000000ull, 1};
  for (unsigned k = 0; k < 64; k++) {
    words.push_back(std::uint64_t{1} << k);
    words.push_back((std::uint64_t{1} << k) - 1);
  }
  for (int i = 0; i < 10000; i++) words.push_back(rng());
  for (std::uint64_t w : words) EXPECT_EQ(popcount64(w), std::popcount(w)) << std::hex << w;
}

}  // namespace
}  // namespace spanheap::detail
