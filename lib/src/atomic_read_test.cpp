// The one-instruction compares of atomic_read.hpp against the loads they stand for, at the edges
// of each compare (equal, one below, one above, zero, the largest value): on x86-64 outside TSan
// they are asm, whose operand order and condition code are easy to get backwards.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "atomic_read.hpp"

namespace spanheap::detail {
namespace {

TEST(AtomicRead, RelaxedEqualsIsTheLoadsEquality) {
  int objects[3] = {};
  std::atomic<int*> word{&objects[1]};
  EXPECT_TRUE(relaxed_equals(word, &objects[1]));
  EXPECT_FALSE(relaxed_equals(word, &objects[0]));
  EXPECT_FALSE(relaxed_equals(word, &objects[2]));
  EXPECT_FALSE(relaxed_equals(word, static_cast<int*>(nullptr)));
  word.store(nullptr);
  EXPECT_TRUE(relaxed_equals(word, static_cast<int*>(nullptr)));
  EXPECT_FALSE(relaxed_equals(word, &objects[1]));
}

TEST(AtomicRead, RelaxedBelowMaskIsAllOnesExactlyBelowTheWord) {
  constexpr std::uint32_t max = std::numeric_limits<std::uint32_t>::max();
  const std::vector<std::uint32_t> values = {0, 1, 2, 63, 64, 65, 1023, max - 1, max};
  for (const std::uint32_t bound : values) {
    const std::atomic<std::uint32_t> word{bound};
    for (const std::uint32_t i : values) {
      const std::uint64_t want = i < bound ? ~std::uint64_t{0} : 0;
      EXPECT_EQ(relaxed_below_mask(i, word), want) << "i " << i << ", word " << bound;
    }
  }
}

TEST(AtomicRead, AtOrPastIsTheUnsignedCompareWithTheBound) {
  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
  // A page index below a table's base wraps to a huge one: it must be past every bound.
  const std::vector<std::size_t> values = {0, 1, 2, 4095, 4096, 4097, max / 2, max - 1, max};
  for (const std::size_t bound : values) {
    const std::atomic<std::size_t> word{bound};
    for (const std::size_t i : values)
      EXPECT_EQ(at_or_past(i, word), i >= bound) << "i " << i << ", bound " << bound;
  }
}

}  // namespace
}  // namespace spanheap::detail
