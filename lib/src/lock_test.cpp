// RankedMutex (check.hpp): mutual exclusion, waking every sleeper, try_lock and the rank order.
// A lost wake-up hangs a thread, so every wait here is bounded: the test fails with a message and
// leaves the stuck thread detached (its lock is never destroyed) rather than hang the run.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.hpp"
#include "test_util.hpp"

// These tests take a lock in one thread and test it from another, and take locks out of order on
// purpose: the static analysis of the library's lock discipline has nothing to check here.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wthread-safety-analysis"
#endif

namespace spanheap::detail {
namespace {

using namespace std::chrono_literals;

// Leaked: a thread that a broken lock left asleep may still refer to it when the test returns.
RankedMutex& leaked_lock(LockRank rank) { return *new RankedMutex(rank); }

// Runs `threads` threads of `body` and joins them all within `limit`; false when any is stuck.
template <typename F>
bool run_bounded(unsigned threads, F body, std::chrono::milliseconds limit) {
  auto* done = new std::atomic<unsigned>{0};
  for (unsigned t = 0; t < threads; t++)
    std::thread([=] {
      body(t);
      done->fetch_add(1);
    }).detach();
  return test::wait_until([&] { return done->load() == threads; }, limit);
}

TEST(RankedMutex, ExcludesUnderContention) {
  RankedMutex& mu = leaked_lock(LockRank::central);
  // Guarded by mu: a plain counter and a witness of who holds the lock.
  auto* counter = new std::uint64_t{0};
  auto* holder = new unsigned{~0u};
  auto* overlaps = new std::atomic<unsigned>{0};
  constexpr unsigned threads = 4, rounds = 20000;
  ASSERT_TRUE(run_bounded(
      threads,
      [&mu, counter, holder, overlaps](unsigned t) {
        for (unsigned i = 0; i < rounds; i++) {
          mu.lock();
          *holder = t;
          ++*counter;
          // Now and then hold the lock long enough that the others stop spinning and sleep.
          if (i % 512 == 0) std::this_thread::sleep_for(200us);
          if (*holder != t) overlaps->fetch_add(1);
          mu.unlock();
        }
      },
      20s))
      << "a thread never got the lock back: a release lost a wake-up";
  EXPECT_EQ(overlaps->load(), 0u) << "two threads held the lock at once";
  mu.lock();
  EXPECT_EQ(*counter, std::uint64_t{threads} * rounds);
  mu.unlock();
}

// Threads that found the lock held for long are asleep on it; one release must let every one of
// them through in turn (each takes the lock as contended, so its own release wakes the next).
TEST(RankedMutex, WakesEverySleeper) {
  RankedMutex& mu = leaked_lock(LockRank::page_heap);
  auto* entered = new std::atomic<unsigned>{0};
  mu.lock();
  constexpr unsigned sleepers = 3;
  auto* done = new std::atomic<unsigned>{0};
  for (unsigned t = 0; t < sleepers; t++)
    std::thread([&mu, entered, done] {
      entered->fetch_add(1);
      mu.lock();
      std::this_thread::sleep_for(1ms);  // the others stay asleep meanwhile
      mu.unlock();
      done->fetch_add(1);
    }).detach();
  ASSERT_TRUE(test::wait_until([&] { return entered->load() == sleepers; }, 10s));
  std::this_thread::sleep_for(50ms);  // far past the spin: all three are asleep
  EXPECT_EQ(done->load(), 0u) << "a thread took a held lock";
  mu.unlock();
  EXPECT_TRUE(test::wait_until([&] { return done->load() == sleepers; }, 10s))
      << done->load() << " of " << sleepers << " sleepers got the lock: a release lost a wake-up";
}

TEST(RankedMutex, TryLock) {
  RankedMutex& mu = leaked_lock(LockRank::central);
  RankedMutex& higher = leaked_lock(LockRank::page_heap);
  EXPECT_FALSE(mu.held_by_me());
  ASSERT_TRUE(mu.try_lock());
  EXPECT_TRUE(mu.held_by_me());
  bool other = true;
  std::thread([&] { other = mu.try_lock(); }).join();
  EXPECT_FALSE(other) << "try_lock took a lock another thread holds";
  mu.unlock();
  EXPECT_FALSE(mu.held_by_me());
  std::thread([&] {
    other = mu.try_lock();
    if (other) mu.unlock();
  }).join();
  EXPECT_TRUE(other) << "try_lock failed on a free lock";
  // Holding a higher rank, a lower one is refused rather than taken out of order.
  higher.lock();
  EXPECT_FALSE(mu.try_lock());
  higher.unlock();
}

TEST(RankedMutexDeathTest, OrderViolationIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ASSERT_DEATH(
      {
        RankedMutex high(LockRank::page_heap);
        RankedMutex low(LockRank::central);
        high.lock();
        low.lock();
      },
      "corruption.*lock order violated: taking central \\(rank 3\\) while holding page_heap "
      "\\(rank 4\\)");
  EXPECT_DEATH(
      {
        RankedMutex mu(LockRank::cycle);
        mu.lock();
        mu.lock();
      },
      "lock order violated: taking cycle \\(rank 2\\) while holding cycle \\(rank 2\\)");
}

}  // namespace
}  // namespace spanheap::detail
