// RankedMutex (check.hpp): mutual exclusion, waking every sleeper, try_lock and the rank order.
// A lost wake-up hangs a thread, so every wait here is bounded: the test fails with a message and
// leaves the stuck thread detached (it keeps the state it shares alive) rather than hang the run.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

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

// Each test's state is shared with its threads (shared_ptr): a thread that a broken lock left
// asleep keeps it alive after the test returns, and the last thread out frees it.
struct Contended {
  RankedMutex mu{LockRank::central};
  std::uint64_t counter = 0;  // guarded by mu
  unsigned holder = ~0u;      // guarded by mu: who holds it, as the holder last wrote it
  std::atomic<unsigned> overlaps{0};
  std::atomic<unsigned> entered{0};
  std::atomic<unsigned> done{0};
};

TEST(RankedMutex, ExcludesUnderContention) {
  constexpr unsigned threads = 4, rounds = 20000;
  auto c = std::make_shared<Contended>();
  for (unsigned t = 0; t < threads; t++)
    std::thread([c, t] {
      for (unsigned i = 0; i < rounds; i++) {
        c->mu.lock();
        c->holder = t;
        ++c->counter;
        // Now and then hold the lock long enough that the others stop spinning and sleep.
        if (i % 512 == 0) std::this_thread::sleep_for(200us);
        if (c->holder != t) c->overlaps.fetch_add(1);
        c->mu.unlock();
      }
      c->done.fetch_add(1);
    }).detach();
  ASSERT_TRUE(test::wait_until([&] { return c->done.load() == threads; }, 20s))
      << c->done.load() << " of " << threads
      << " threads finished: a thread never got the lock back (a release lost a wake-up)";
  EXPECT_EQ(c->overlaps.load(), 0u) << "two threads held the lock at once";
  c->mu.lock();
  EXPECT_EQ(c->counter, std::uint64_t{threads} * rounds);
  c->mu.unlock();
}

// Threads that found the lock held for long are asleep on it; one release must let every one of
// them through in turn (each takes the lock as contended, so its own release wakes the next).
TEST(RankedMutex, WakesEverySleeper) {
  constexpr unsigned sleepers = 3;
  auto c = std::make_shared<Contended>();
  c->mu.lock();
  for (unsigned t = 0; t < sleepers; t++)
    std::thread([c] {
      c->entered.fetch_add(1);  // before the lock: the test waits for this, never past it
      c->mu.lock();
      std::this_thread::sleep_for(1ms);  // the others stay asleep meanwhile
      c->mu.unlock();
      c->done.fetch_add(1);
    }).detach();
  const bool all_entered = test::wait_until([&] { return c->entered.load() == sleepers; }, 10s);
  std::this_thread::sleep_for(50ms);  // far past the spin: all three are asleep
  EXPECT_EQ(c->done.load(), 0u) << "a thread took a held lock";
  c->mu.unlock();
  ASSERT_TRUE(all_entered) << "the threads never started";
  EXPECT_TRUE(test::wait_until([&] { return c->done.load() == sleepers; }, 10s))
      << c->done.load() << " of " << sleepers << " sleepers got the lock: a release lost a wake-up";
}

TEST(RankedMutex, TryLock) {
  RankedMutex mu(LockRank::central);
  RankedMutex higher(LockRank::page_heap);
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
