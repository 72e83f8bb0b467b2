// atomic_read: a compare of an atomic word with a value in one instruction. GCC never folds an
// atomic load into the instruction that uses it: each is a `mov` into a register and then the
// compare, one instruction more on a fast path for every shared word it tests. On x86-64 an
// aligned 8-byte read is atomic, so an asm compare with the word in memory reads it once, as the
// relaxed load does. ThreadSanitizer builds and other targets take the atomic load (TSan must
// see the read).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "check.hpp"

namespace spanheap::detail {

// a.load(std::memory_order_relaxed) == v.
template <typename T>
[[gnu::always_inline]] inline bool relaxed_equals(const std::atomic<T>& a, T v) noexcept {
#if defined(__x86_64__) && !defined(SPANHEAP_TSAN)
  static_assert(sizeof(T) == 8 && std::atomic<T>::is_always_lock_free);
  bool equal;
  asm("cmpq %2, %1" : "=@cce"(equal) : "m"(a), "r"(v));
  return equal;
#else
  return a.load(std::memory_order_relaxed) == v;
#endif
}

// All ones when i < a.load(std::memory_order_relaxed), else zero: "below" as a mask, in the
// compare and a subtract-with-borrow.
[[gnu::always_inline]] inline std::uint64_t relaxed_below_mask(
    std::uint32_t i, const std::atomic<std::uint32_t>& a) noexcept {
#if defined(__x86_64__) && !defined(SPANHEAP_TSAN)
  std::uint64_t mask;
  asm("cmpl %2, %1\n\tsbbq %0, %0" : "=r"(mask) : "r"(i), "m"(a) : "cc");
  return mask;
#else
  return std::uint64_t{0} - static_cast<std::uint64_t>(i < a.load(std::memory_order_relaxed));
#endif
}

// i >= a.load(std::memory_order_acquire), for a bound read before what it guards. Acquire on
// x86-64 without a fence: the hardware does not reorder a load with a later one, and the later
// loads this bound guards are behind the branch on its answer, above which no compiler moves a
// load that could fault (an entry past the bound is inaccessible memory). Elsewhere, and under
// TSan, the acquire load.
[[gnu::always_inline]] inline bool at_or_past(std::size_t i,
                                              const std::atomic<std::size_t>& a) noexcept {
#if defined(__x86_64__) && !defined(SPANHEAP_TSAN)
  static_assert(sizeof(std::size_t) == 8);
  bool at_or_above;
  asm("cmpq %2, %1" : "=@ccae"(at_or_above) : "r"(i), "m"(a));
  return at_or_above;
#else
  return i >= a.load(std::memory_order_acquire);
#endif
}

}  // namespace spanheap::detail
