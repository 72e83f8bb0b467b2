// check: see check.hpp.
#include "check.hpp"

#include "report.hpp"

namespace spanheap::detail {
namespace {
// Bit r set: the thread holds a lock of rank r.
thread_local std::uint32_t held_ranks = 0;
}  // namespace

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

void RankedMutex::lock() {
  const auto r = static_cast<std::uint32_t>(rank_);
  if (SPANHEAP_UNLIKELY(held_ranks >> r != 0)) {
    // Holding this rank or a higher one: a lock-order violation (or self-deadlock).
    unsigned highest = 31 - static_cast<unsigned>(__builtin_clz(held_ranks));
    report(nullptr, ErrorKind::corruption, nullptr,
           "lock order violated: taking {} (rank {}) while holding {} (rank {})", to_string(rank_),
           r, to_string(static_cast<LockRank>(highest)), highest);
  }
  mu_.lock();
  held_ranks |= 1u << r;
}

bool RankedMutex::try_lock() {
  const auto r = static_cast<std::uint32_t>(rank_);
  if (held_ranks >> r != 0) return false;
  if (!mu_.try_lock()) return false;
  held_ranks |= 1u << r;
  return true;
}

void RankedMutex::unlock() {
  held_ranks &= ~(1u << static_cast<std::uint32_t>(rank_));
  mu_.unlock();
}

bool RankedMutex::held_by_me() const noexcept {
  return (held_ranks >> static_cast<std::uint32_t>(rank_) & 1) != 0;
}

}  // namespace spanheap::detail
