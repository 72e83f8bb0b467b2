// Tests for span: the fast path and next_free_index against a naive scan, the sweep's bit equations
// (INV-A1..A4) and the allocated/pending/reclaimed classification, on spans built directly.
#include "span.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <memory>
#include <random>
#include <vector>

#include "cache.hpp"
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

// INV-A3 as the fast path relies on it: no bit past nelems; the word of free_index shifted to
// it, or nothing yet at a word's first slot.
::testing::AssertionResult cache_mirrors_bits(const Span& s) {
  const std::uint32_t fi = s.free_index.load();
  if (fi >= s.nelems) return ::testing::AssertionSuccess();
  const std::uint64_t want =
      (~s.bits[fi / 64].alloc.load() & slots_in_word(s.nelems, fi / 64)) >> (fi % 64);
  const std::uint64_t cached = s.alloc_cache.load();
  if (cached == want || (fi % 64 == 0 && cached == 0)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "alloc_cache " << cached << " at free_index " << fi << ", want " << want;
}

TEST_F(SpanTest, FastAndSlowAllocationHandOutTheFreeSlotsInOrderUnderRandomSweeps) {
  std::mt19937 rng(42);
  auto cache = std::make_unique<Cache>();
  for (unsigned cls = 1; cls < num_size_classes(); cls += 3) {
    init(cls);
    cache->alloc[cls].store(&span);
    for (int round = 0; round < 6; round++) {
      // Allocate a random number of slots, each through the fast path (cache_alloc_fast) or,
      // when it declines or at random, the slow one (next_free_index), as allocation does.
      const std::uint32_t n = rng() % (span.nelems + 1);
      for (std::uint32_t k = 0; k < n; k++) {
        const std::uint32_t want = naive_next();
        // The slot the last allocation prefetched (prefetch_next_slot) is the one this one hands
        // out, whenever the alloc cache still holds a slot (empty, it is only a guess).
        const std::uint64_t cached = span.alloc_cache.load();
        if (cached != 0 && want < span.nelems) {
          ASSERT_EQ(next_slot_address(span, span.free_index.load(), cached, span.elem_size),
                    span.start + want * span.elem_size)
              << "class " << cls << " round " << round;
        }
        std::size_t elem = 0;
        void* obj = nullptr;
        std::uint32_t got;
        if (rng() % 4 != 0 && cache_alloc_fast(*cache, cls, obj, elem)) {
          got = slot_of(span, reinterpret_cast<std::uintptr_t>(obj));
          ASSERT_EQ(reinterpret_cast<std::uintptr_t>(obj), span.start + got * span.elem_size);
          ASSERT_EQ(elem, span.elem_size);
        } else {
          got = next_free_index(span);
          if (got < span.nelems) span.alloc_count++;
        }
        ASSERT_EQ(got, want) << "class " << cls << " round " << round;
        ASSERT_TRUE(cache_mirrors_bits(span)) << "class " << cls << " slot " << got;
        if (got == span.nelems) break;
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
      EXPECT_EQ(span.alloc_cache.load(),
                ~span.bits[0].alloc.load() & slots_in_word(span.nelems, 0));
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
// object_slot against the definition, at every byte of every class's span: the slot for each
// object start, a value past the last slot for every other address (the free fast path trusts it
// to turn away interior pointers and the span's tail).
TEST_F(SpanTest, ObjectSlotFindsExactlyTheObjectStarts) {
  for (unsigned cls = 1; cls < num_size_classes(); cls++) {
    init(cls);
    const std::uintptr_t bytes = std::uintptr_t{span.npages} * page_size;
    std::uint32_t starts = 0;
    for (std::uintptr_t off = 0; off < bytes; off++) {
      const std::uintptr_t p = span.start + off;
      const std::uint32_t i = object_slot(span, p);
      const bool start = off % span.elem_size == 0 && off / span.elem_size < span.nelems;
      ASSERT_EQ(i < span.nelems, start) << "class " << cls << " offset " << off << " slot " << i;
      // slot_of, the other paths' arithmetic, agrees on the starts.
      ASSERT_EQ(start, off == std::uintptr_t{slot_of(span, p)} * span.elem_size &&
                           slot_of(span, p) < span.nelems)
          << "class " << cls << " offset " << off;
      if (start) {
        ASSERT_EQ(i, off / span.elem_size) << "class " << cls << " offset " << off;
        starts++;
      }
    }
    EXPECT_EQ(starts, span.nelems) << "class " << cls;
  }
}

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
