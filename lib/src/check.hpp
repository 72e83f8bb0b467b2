// check: the three tiers of checks (always-on, debug, expensive), Clang thread-safety annotations
// and the lock-rank discipline. See docs/design.md §"Errors and checks".
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstdint>

#if defined(__clang__)
#define SPANHEAP_TSA(x) __attribute__((x))
#else
#define SPANHEAP_TSA(x)
#endif
#define CAPABILITY(x) SPANHEAP_TSA(capability(x))
#define GUARDED_BY(x) SPANHEAP_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) SPANHEAP_TSA(pt_guarded_by(x))
#define REQUIRES(...) SPANHEAP_TSA(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) SPANHEAP_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SPANHEAP_TSA(release_capability(__VA_ARGS__))
#define EXCLUDES(...) SPANHEAP_TSA(locks_excluded(__VA_ARGS__))
#define SCOPED_CAPABILITY SPANHEAP_TSA(scoped_lockable)
#define NO_THREAD_SAFETY_ANALYSIS SPANHEAP_TSA(no_thread_safety_analysis)

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPANHEAP_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define SPANHEAP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SPANHEAP_ASAN)
#define SPANHEAP_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(SPANHEAP_TSAN)
#define SPANHEAP_TSAN 1
#endif

#define SPANHEAP_LIKELY(x) __builtin_expect(!!(x), 1)
#define SPANHEAP_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace spanheap::detail {

// Lock ranks: the one list of lock ordering (Go's mklockrank.go). A thread may only take a lock
// whose rank is greater than every lock it holds. Checked in every build (it is one thread-local
// word), reported as corruption with both ranks named.
enum class LockRank : std::uint8_t {
  heaps = 1,  // the process-wide list of live heaps (fork.cpp); held across fork()
  cycle,      // World::cycle_mu: one cycle / verify / flush_all at a time
  central,    // Central::mu (never two centrals at once)
  page_heap,  // PageHeap::mu
  registry,   // the process-wide arena registry
};
const char* to_string(LockRank rank) noexcept;

// Bit r set: the calling thread holds a lock of rank r (RankedMutex).
extern constinit thread_local std::uint32_t held_ranks;

// A mutex that carries its rank. Held ranks form a bitmask per thread; ranks are small.
//
// The lock is one futex word (Drepper's "Futexes are tricky", mutex 2): 0 free, 1 held, 2 held
// with perhaps a thread asleep on it. Taking a free lock is one CAS and releasing an uncontended
// one is one exchange, both inline: std::mutex's pthread calls cost ~55 instructions a pair, and a
// large allocation and its free take four pairs. A contended lock spins briefly, then sleeps on
// the word (atomic wait); a release that finds 2 wakes one sleeper, which takes the lock as 2,
// since others may still sleep. The word holds no waiter list, so a fork() child that releases
// the locks its parent's forking thread held is left with nothing of the parent's sleepers.
class CAPABILITY("mutex") RankedMutex {
 public:
  explicit constexpr RankedMutex(LockRank rank) noexcept : rank_(rank) {}
  void lock() ACQUIRE() {
    const auto r = static_cast<std::uint32_t>(rank_);
    // Holding this rank or a higher one: a lock-order violation (or self-deadlock).
    if (SPANHEAP_UNLIKELY(held_ranks >> r != 0)) order_violated();
    take();
    held_ranks |= 1u << r;
  }
  void unlock() RELEASE() {
    held_ranks &= ~(1u << static_cast<std::uint32_t>(rank_));
    give();
  }
  bool try_lock() SPANHEAP_TSA(try_acquire_capability(true));
  LockRank rank() const noexcept { return rank_; }
  // True when the calling thread holds a lock of this rank (debug checks).
  bool held_by_me() const noexcept;
  // For the fork handlers only (fork.cpp), which hold every heap's locks across fork(): many locks
  // of one rank at once, in rank order, outside the per-thread bookkeeping. In the child the
  // forking thread is the only thread left and releases them as the parent does.
  void lock_for_fork() SPANHEAP_TSA(no_thread_safety_analysis) { take(); }
  void unlock_after_fork() SPANHEAP_TSA(no_thread_safety_analysis) { give(); }

 private:
  static constexpr std::uint32_t free_ = 0, held = 1, contended = 2;
  void take() {
    std::uint32_t expected = free_;
    if (SPANHEAP_UNLIKELY(!word_.compare_exchange_strong(expected, held, std::memory_order_acquire,
                                                         std::memory_order_relaxed)))
      take_contended();
  }
  void give() {
    if (SPANHEAP_UNLIKELY(word_.exchange(free_, std::memory_order_release) == contended))
      wake_one();
  }
  [[gnu::cold]] void order_violated() const;
  [[gnu::noinline]] void take_contended();
  [[gnu::noinline]] void wake_one();

  std::atomic<std::uint32_t> word_{free_};
  LockRank rank_;
};

class SCOPED_CAPABILITY LockGuard {
 public:
  explicit LockGuard(RankedMutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~LockGuard() RELEASE() { mu_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  RankedMutex& mu_;
};

// A failed protocol check. Reports ErrorKind::corruption through the heap's handler (or, with no
// heap at hand, through the default handler) with the check's text, file and line.
class HeapState;
[[gnu::cold]] void check_failed(const HeapState* heap, const char* expr, const char* file, int line,
                                const char* detail);

}  // namespace spanheap::detail

// Always-on: conditions that bad input or memory corruption can reach.
#define SPANHEAP_CHECK(heap, cond, msg)                                           \
  do {                                                                            \
    if (SPANHEAP_UNLIKELY(!(cond)))                                               \
      ::spanheap::detail::check_failed((heap), #cond, __FILE__, __LINE__, (msg)); \
  } while (0)

// Debug tier: protocol preconditions; on when the heap's check level is debug or expensive.
#define SPANHEAP_DCHECK(heap, cond, msg)                                          \
  do {                                                                            \
    if ((heap)->debug_checks() && SPANHEAP_UNLIKELY(!(cond)))                     \
      ::spanheap::detail::check_failed((heap), #cond, __FILE__, __LINE__, (msg)); \
  } while (0)
