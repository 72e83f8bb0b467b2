// popcount: the population count of a 64-bit word, with the POPCNT instruction where the CPU has
// it (asked once) and a dozen ALU instructions where it does not: the bitmaps' counts (sweeps,
// collections, "worth collecting") and the allocation counters' (a word's free slots).
#pragma once

#include <atomic>
#include <cstdint>

#include "check.hpp"

namespace spanheap::detail {

// Population count in a few ALU instructions: x86-64's baseline has no POPCNT instruction, and
// there GCC's __builtin_popcountll is a call into libgcc (a third of worth_collecting's cost).
inline unsigned popcount64(std::uint64_t x) noexcept {
#if defined(__POPCNT__) || !defined(__x86_64__)
  return static_cast<unsigned>(__builtin_popcountll(x));
#else
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<unsigned>((x * 0x0101010101010101ull) >> 56);
#endif
}

// The population counts of a collection and of the test before it (sweep_bits,
// worth_collecting), a word of bitmap each, and of the allocation counters' charge
// (count_slow_allocation): with the POPCNT instruction where the CPU has it.
// x86-64's baseline lacks it, so a build for that baseline counts in a dozen ALU instructions
// (popcount64) unless the CPU, asked once, says it has the instruction; almost every x86-64 CPU
// does. An asm statement rather than a target attribute: the counting loops stay ordinary
// templates, one instance for each answer.
#if defined(__x86_64__) && !defined(__POPCNT__)
// -1 until asked, then 0 or 1; a relaxed atomic rather than a function-local static, whose guard
// made the question a call.
inline std::atomic<int> popcnt_answer{-1};

[[gnu::noinline]] bool ask_cpu_for_popcnt() noexcept;

inline bool cpu_has_popcnt() noexcept {
  const int answer = popcnt_answer.load(std::memory_order_relaxed);
  return SPANHEAP_LIKELY(answer >= 0) ? answer != 0 : ask_cpu_for_popcnt();
}
template <bool hw>
[[gnu::always_inline]] inline unsigned count_bits(std::uint64_t x) noexcept {
  if constexpr (hw) {
    std::uint64_t n;
    asm("popcntq %1, %0" : "=r"(n) : "rm"(x));
    return static_cast<unsigned>(n);
  } else {
    return popcount64(x);
  }
}
#else
inline bool cpu_has_popcnt() noexcept { return false; }
template <bool>
[[gnu::always_inline]] inline unsigned count_bits(std::uint64_t x) noexcept {
  return popcount64(x);  // the instruction when the target has one
}
#endif

// One word's population count, by whichever of the two the CPU can run.
[[gnu::always_inline]] inline unsigned count_word(std::uint64_t x) noexcept {
  return cpu_has_popcnt() ? count_bits<true>(x) : count_bits<false>(x);
}

}  // namespace spanheap::detail
