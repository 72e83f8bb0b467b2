// Tests for popcount.hpp: the CPU's answer about POPCNT and both ways of counting.
#include "popcount.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace spanheap::detail {
namespace {

#if defined(__x86_64__) && !defined(__POPCNT__)
// The answer (glibc's view of the CPU's features, or cpuid where the C library has none) is the
// CPU's own: asked here with cpuid directly, leaf 1, ECX bit 23. A wrong answer either runs an
// instruction the CPU lacks (SIGILL) or counts in software on every CPU.
TEST(Popcount, TheAnswerIsTheCpus) {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  ASSERT_NE(__get_cpuid(1, &eax, &ebx, &ecx, &edx), 0);
  const bool cpu = (ecx & bit_POPCNT) != 0;
  popcnt_answer.store(-1, std::memory_order_relaxed);
  EXPECT_EQ(ask_cpu_for_popcnt(), cpu);
  EXPECT_EQ(popcnt_answer.load(std::memory_order_relaxed), cpu ? 1 : 0) << "the answer not kept";
  EXPECT_EQ(cpu_has_popcnt(), cpu);
}
#endif

TEST(Popcount, BothWaysCountEveryWord) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; i++) {
    // Sparse, dense and uniform words, and the edges.
    std::uint64_t x = rng();
    if (i % 3 == 1) x &= rng() & rng();
    if (i % 3 == 2) x |= rng() | rng();
    if (i < 3) x = i == 0 ? 0 : i == 1 ? ~std::uint64_t{0} : std::uint64_t{1} << 63;
    const auto expected = static_cast<unsigned>(__builtin_popcountll(x));
    ASSERT_EQ(popcount64(x), expected) << std::hex << x;
    ASSERT_EQ(count_bits<false>(x), expected) << std::hex << x;
    if (cpu_has_popcnt()) {
      ASSERT_EQ(count_bits<true>(x), expected) << std::hex << x;
    }
    ASSERT_EQ(count_word(x), expected) << std::hex << x;
  }
}

}  // namespace
}  // namespace spanheap::detail
