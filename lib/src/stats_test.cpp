// Tests of the allocation counters as the caches keep them (types.hpp, Cache::allocs): a word's
// free slots are counted when the slow path leaves them in the alloc cache of a P's current span,
// the fast path counts nothing, a flush counts back what the cache still holds, and stats() takes
// the slots still cached out of its totals. So every figure must be exact at every point a test can
// stop at: mid-word, at a word's end, after a refill, a collection, a flush and a cycle, for each
// P, in both reuse policies.
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace spanheap {
namespace {

struct Live {
  void* p;
  std::size_t size;
};

class CachedWordCounts : public ::testing::TestWithParam<ReusePolicy> {};

// Allocations and frees of a few classes through two Ps in runs of random length, so that each
// check lands at a random point of an alloc cache's word (mid-word, its last slot, a new span);
// after each run the counters must equal what the test did, and verify() must find them equal to
// what the spans hold (INV-C).
TEST_P(CachedWordCounts, StatsAreExactAtEveryPointOfAWord) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.reuse = GetParam();
  Heap heap(o);
  const std::size_t sizes[] = {8, 48, 256, 1024, 4096};
  std::mt19937 rng(7);
  std::vector<Live> live;
  std::uint64_t allocations = 0, frees = 0, live_bytes = 0;
  auto expect_exact = [&](const char* where, int round) {
    const Stats s = heap.stats();
    EXPECT_EQ(s.allocations, allocations) << where << ", round " << round;
    EXPECT_EQ(s.frees, frees) << where << ", round " << round;
    // Freed objects stay counted as live until their span is swept or collected.
    EXPECT_EQ(s.live_objects - s.pending_frees, live.size()) << where << ", round " << round;
  };
  for (int round = 0; round < 60; round++) {
    // The thread's own P through the fast paths (Heap::allocate), or P 1 through the general path
    // (a Proc handle): the two count differently.
    const bool fast = rng() % 2 == 0;
    const std::size_t size = sizes[rng() % std::size(sizes)];
    const unsigned n = rng() % 150;
    for (unsigned k = 0; k < n; k++) {
      live.push_back({fast ? heap.allocate(size) : heap.proc(1).allocate(size), size});
      ASSERT_NE(live.back().p, nullptr);
      allocations++;
      live_bytes += heap.usable_size(live.back().p);
    }
    expect_exact("after allocating", round);
    // Free a random share, through either P: owner frees and other Ps' frees, so collections
    // follow, each of which reloads an alloc cache.
    for (unsigned k = rng() % (live.size() / 2 + 1); k > 0; k--) {
      const std::size_t at = rng() % live.size();
      live_bytes -= heap.usable_size(live[at].p);
      if (rng() % 2 == 0) {
        heap.free(live[at].p);
      } else {
        heap.proc(1).free(live[at].p);
      }
      live[at] = live.back();
      live.pop_back();
      frees++;
    }
    expect_exact("after freeing", round);
    if (round % 10 == 9) {
      // A cycle: both Ps' caches flushed (the ragged barrier), so every cached slot is counted
      // back; then every span swept, so live_objects is exact as well.
      heap.collect();
      while (heap.sweep_one()) {
      }
      expect_exact("after a cycle", round);
      const Stats s = heap.stats();
      EXPECT_EQ(s.live_objects, live.size()) << "round " << round;
      EXPECT_EQ(s.live_bytes, live_bytes) << "round " << round;
    }
    EXPECT_VERIFIED(heap);
  }
  for (const Live& l : live) heap.free(l.p);
  EXPECT_EQ(rec.count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Reuse, CachedWordCounts,
                         ::testing::Values(ReusePolicy::owner, ReusePolicy::next_cycle),
                         [](const ::testing::TestParamInfo<ReusePolicy>& param) {
                           return param.param == ReusePolicy::owner ? "Owner" : "NextCycle";
                         });

// stats() reads the other Ps' current spans and their alloc caches while those Ps allocate: a
// racy snapshot (TSan checks that every read it makes is an atomic one), never more objects than
// the threads have allocated, and exact once they stop.
TEST(CachedWordCounts, StatsReadWhileOtherThreadsAllocateAreBoundedAndThenExact) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(2, rec));
  constexpr int threads = 2;
  constexpr int ops = 20000;
  std::atomic<std::uint64_t> allocated{0};
  std::atomic<int> running{threads};
  std::atomic<std::uint64_t> reads{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      std::vector<void*> ring(512, nullptr);
      for (int i = 0; i < ops; i++) {
        // Halfway, wait for a read to end: on a loaded machine the reader might otherwise not
        // run before both threads are done, and the test would check nothing while they run.
        if (i == ops / 2) {
          const std::uint64_t seen = reads.load();
          while (reads.load() == seen) std::this_thread::yield();
        }
        void*& slot = ring[rng() % ring.size()];
        if (slot != nullptr) heap.free(slot);
        // Counted before the allocation: the reader's bound may not trail it.
        allocated.fetch_add(1);
        slot = heap.allocate(8 + rng() % 504);
      }
      for (void* q : ring)
        if (q != nullptr) heap.free(q);
      running.fetch_sub(1);
    });
  }
  while (running.load() != 0) {
    const Stats s = heap.stats();
    const std::uint64_t bound = allocated.load();
    EXPECT_LE(s.allocations, bound);
    EXPECT_LE(s.live_objects, bound);
    reads.fetch_add(1);
  }
  for (std::thread& w : workers) w.join();
  const Stats s = heap.stats();
  EXPECT_EQ(s.allocations, allocated.load());
  EXPECT_EQ(s.frees, allocated.load());
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

}  // namespace
}  // namespace spanheap
