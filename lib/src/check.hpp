// check: the three tiers of checks (always-on, debug, expensive), Clang thread-safety annotations
// and the lock-rank discipline. See docs/design.md §"Errors and checks".
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>

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

// A mutex that carries its rank. Held ranks form a bitmask per thread; ranks are small.
class CAPABILITY("mutex") RankedMutex {
 public:
  explicit constexpr RankedMutex(LockRank rank) noexcept : rank_(rank) {}
  void lock() ACQUIRE();
  void unlock() RELEASE();
  bool try_lock() SPANHEAP_TSA(try_acquire_capability(true));
  LockRank rank() const noexcept { return rank_; }
  // True when the calling thread holds a lock of this rank (debug checks).
  bool held_by_me() const noexcept;
  // For the fork handlers only (fork.cpp), which hold every heap's locks across fork(): many locks
  // of one rank at once, in rank order, outside the per-thread bookkeeping. In the child the
  // forking thread is the only thread left and releases them as the parent does.
  void lock_for_fork() SPANHEAP_TSA(no_thread_safety_analysis) { mu_.lock(); }
  void unlock_after_fork() SPANHEAP_TSA(no_thread_safety_analysis) { mu_.unlock(); }

 private:
  std::mutex mu_;
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
