// check: see check.hpp.
#include "check.hpp"

#include "report.hpp"

namespace spanheap::detail {

constinit thread_local std::uint32_t held_ranks = 0;

const char* to_string(LockRank rank) noexcept {
  switch (rank) {
    case LockRank::heaps:
      return "heaps";
    case LockRank::cycle:
      return "cycle";
    case LockRank::central:
      return "central";
    case LockRank::page_heap:
      return "page_heap";
    case LockRank::registry:
      return "registry";
  }
  return "unknown";
}

void RankedMutex::order_violated() const {
  const auto r = static_cast<std::uint32_t>(rank_);
  const unsigned highest = 31 - static_cast<unsigned>(__builtin_clz(held_ranks));
  report(nullptr, ErrorKind::corruption, nullptr,
         "lock order violated: taking {} (rank {}) while holding {} (rank {})", to_string(rank_), r,
         to_string(static_cast<LockRank>(highest)), highest);
}

void RankedMutex::take_contended() {
  // A holder keeps these locks for a few hundred instructions: spin that long before sleeping.
  for (int i = 0; i < 64; i++) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    std::uint32_t expected = free_;
    if (word_.load(std::memory_order_relaxed) == free_ &&
        word_.compare_exchange_weak(expected, held, std::memory_order_acquire,
                                    std::memory_order_relaxed))
      return;
  }
  // Marked contended before sleeping, so that the holder's release wakes a sleeper; taken as
  // contended too, since another thread may still sleep (at worst one wake-up too many).
  while (word_.exchange(contended, std::memory_order_acquire) != free_)
    word_.wait(contended, std::memory_order_relaxed);
}

void RankedMutex::wake_one() { word_.notify_one(); }

bool RankedMutex::try_lock() {
  const auto r = static_cast<std::uint32_t>(rank_);
  if (held_ranks >> r != 0) return false;
  std::uint32_t expected = free_;
  if (!word_.compare_exchange_strong(expected, held, std::memory_order_acquire,
                                     std::memory_order_relaxed))
    return false;
  held_ranks |= 1u << r;
  return true;
}

bool RankedMutex::held_by_me() const noexcept {
  return (held_ranks >> static_cast<std::uint32_t>(rank_) & 1) != 0;
}

}  // namespace spanheap::detail
