// Tests for size_classes: the generated table's bounds, lookups and the divide-free index.
#include "size_classes.hpp"

#include <gtest/gtest.h>

namespace spanheap::detail {
namespace {

TEST(SizeClasses, TableShape) {
  const unsigned n = num_size_classes();
  EXPECT_GT(n, 60u);
  EXPECT_LT(n, max_size_classes);
  EXPECT_EQ(size_class(0).size, 0u);
  EXPECT_EQ(size_class(1).size, 8u);
  EXPECT_EQ(size_class(n - 1).size, max_small_size);
  for (unsigned c = 2; c < n; c++) {
    EXPECT_GT(size_class(c).size, size_class(c - 1).size) << "class " << c;
  }
}

TEST(SizeClasses, TailWasteAtMostOneEighth) {
  for (unsigned c = 1; c < num_size_classes(); c++) {
    const SizeClass& sc = size_class(c);
    const std::size_t span = std::size_t{sc.npages} * page_size;
    EXPECT_EQ(sc.nelems, span / sc.size) << "class " << c;
    EXPECT_LE(span - std::size_t{sc.nelems} * sc.size, span / 8) << "class " << c;
    EXPECT_LE(sc.nelems, max_nelems);
    EXPECT_GE(sc.nelems, 1u);
  }
}

// Spans are grown toward min_span_slots (min_medium_span_slots above small_max; size_classes.hpp),
// a page at a time while the span stays within max_grown_span (the waste rule may then add pages
// past it), and only as far as needed.
TEST(SizeClasses, ClassesHoldAtLeastTheirMinimumSlots) {
  for (unsigned c = 1; c < num_size_classes(); c++) {
    const SizeClass& sc = size_class(c);
    const std::size_t span = std::size_t{sc.npages} * page_size;
    const std::size_t want = sc.size <= size_table::small_max ? size_table::min_span_slots
                                                              : size_table::min_medium_span_slots;
    EXPECT_TRUE(sc.nelems >= want || span + page_size > size_table::max_grown_span)
        << "class " << c << " (" << sc.size << " B) has " << sc.nelems << " slots";
    if (sc.npages > 1) {
      // Grown no further than needed: with a page fewer the span would hold too few objects or
      // waste more than 1/8 (the waste rule alone, past max_grown_span).
      const std::size_t fewer = span - page_size;
      EXPECT_TRUE(fewer / sc.size < want || fewer % sc.size > fewer / 8) << "class " << c;
      if (span > size_table::max_grown_span) {
        EXPECT_GT(fewer % sc.size, fewer / 8) << "class " << c;
      }
    }
  }
  EXPECT_EQ(size_class(size_to_class16(512)).nelems, 128u);
  EXPECT_EQ(size_class(size_to_class16(1024)).nelems, 64u);  // held to max_grown_span
  EXPECT_EQ(size_class(size_to_class(8192, 16)).nelems, 8u);
}

TEST(SizeClasses, LookupIsSmallestFit) {
  for (std::size_t size = 0; size <= max_small_size; size++) {
    for (std::size_t align :
         {std::size_t{1}, std::size_t{8}, std::size_t{16}, std::size_t{64}, std::size_t{4096}}) {
      const unsigned c = size_to_class(size, align);
      if (c == 0) {
        // Only legitimate when no class fits both the size and the alignment.
        for (unsigned k = 1; k < num_size_classes(); k++) {
          ASSERT_FALSE(size_class(k).size >= size && size_class(k).size % align == 0)
              << "size " << size << " align " << align << " could use class " << k;
        }
        continue;
      }
      ASSERT_GE(size_class(c).size, size == 0 ? 1 : size);
      ASSERT_EQ(size_class(c).size % align, 0u) << "size " << size << " align " << align;
      if (c > 1) {
        for (unsigned k = 1; k < c; k++) {
          ASSERT_FALSE(size_class(k).size >= size && size_class(k).size % align == 0)
              << "size " << size << " align " << align << ": class " << k << " is smaller";
        }
      }
    }
  }
  EXPECT_EQ(size_to_class(max_small_size + 1, 16), 0u);
}

TEST(SizeClasses, DivideFreeIndexIsExactForEveryOffset) {
  for (unsigned c = 1; c < num_size_classes(); c++) {
    const SizeClass& sc = size_class(c);
    const std::size_t span = std::size_t{sc.npages} * page_size;
    for (std::size_t off = 0; off < span; off++) {
      ASSERT_EQ(object_index(off, sc), off / sc.size) << "class " << c << " offset " << off;
    }
  }
}

}  // namespace
}  // namespace spanheap::detail

namespace spanheap::detail {
namespace {
TEST(SizeClasses, AlignmentAbovePageSizeHasNoClass) {
  EXPECT_EQ(size_to_class(54, 2 * page_size), 0u);
  EXPECT_NE(size_to_class(54, page_size), 0u);
  EXPECT_EQ(size_class(size_to_class(54, page_size)).size % page_size, 0u);
}

// The fast path's one-load lookup agrees with the general one for every size it serves.
TEST(SizeClasses, FastLookupAgreesWithTheGeneralOne) {
  for (std::size_t size = 0; size <= size_table::small_max; size++)
    ASSERT_EQ(size_to_class16(size), size_to_class(size, 16)) << "size " << size;
}
}  // namespace
}  // namespace spanheap::detail
