// yield_points: see yield_points.hpp.
#include "yield_points.hpp"

#include <spanheap/oracle/rng.hpp>
#include <spanheap/testing.hpp>

#include <atomic>
#include <chrono>
#include <thread>

namespace spanheap::stress {

namespace {

std::atomic<std::uint64_t> g_points{0};
std::atomic<std::uint64_t> g_yields{0};
std::atomic<std::uint64_t> g_sleeps{0};
// Numbers the threads that reach a point, in the order they first do: each gets its own stream.
std::atomic<std::uint64_t> g_next_stream{0};

struct ThreadStream {
  std::uint64_t seed = 0;
  bool ready = false;
  oracle::Rng rng{0};
};
thread_local ThreadStream t_stream;

oracle::Rng& stream_for(std::uint64_t seed) {
  if (!t_stream.ready || t_stream.seed != seed) {
    t_stream.rng = oracle::Rng(seed, 0x5eed0000 + g_next_stream.fetch_add(1));
    t_stream.seed = seed;
    t_stream.ready = true;
  }
  return t_stream.rng;
}

}  // namespace

void arm_yield_points(Heap& heap, std::uint64_t seed, unsigned per_mille) {
  if (per_mille == 0) return;
  testing::set_protocol_hook(heap, [seed, per_mille](testing::ProtocolPoint) {
    g_points.fetch_add(1, std::memory_order_relaxed);
    oracle::Rng& rng = stream_for(seed);
    const std::uint64_t draw = rng.next() % 1000;
    if (draw < per_mille) {
      g_sleeps.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(10 + rng.next() % 90));
    } else if (draw < 4 * per_mille) {
      g_yields.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();
    }
  });
}

YieldCounts yield_counts() {
  return {g_points.load(std::memory_order_relaxed), g_yields.load(std::memory_order_relaxed),
          g_sleeps.load(std::memory_order_relaxed)};
}

}  // namespace spanheap::stress
