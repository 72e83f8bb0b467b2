// concurrent_sweep_stress: many sweepers race allocating Ps for the unswept spans of the same few
// size classes. Background sweepers (Options::sweepers) and threads calling sweep_one() in a loop
// compete with allocators whose bursts fill spans of shared classes and then free most of them
// (every span has work for the next sweep, and central refills sweep on demand); large-object
// bursts free whole page runs that the page heap reclaims at sweep and, with
// release_after_cycles = 1, hands back to the OS one cycle later while allocators ask for pages
// again. Cycles come from a random-interval collector and from pacing (gc_percent). See
// docs/stress.md.
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <thread>
#include <vector>

using namespace spanheap;
using namespace spanheap::stress;

namespace {

Defaults defaults() {
  Defaults d;
  d.normal.threads = 4;
  d.normal.seconds = 10;
  d.normal.sweepers = 4;
  d.normal.sweep_threads = 2;
  d.normal.collectors = 1;
  d.normal.procs = 2;
  d.normal.verify_every_ms = 200;
  d.normal.stw_every_us = 1000;
  d.smoke = d.normal;
  d.smoke.threads = 3;
  d.smoke.sweepers = 3;
  d.smoke.seconds = under_sanitizer() ? 3 : 2;
  d.smoke.verify_every_ms = 100;
  d.smoke.max_large = std::size_t{512} << 10;
  return d;
}

// The classes every allocator shares (so their spans meet on the same central lists).
constexpr std::array<std::size_t, 7> shared_sizes = {24, 48, 128, 512, 2048, 8192, 24576};

// An allocator: bursts of one shared class (or of large objects), most of each freed at once so
// every span has work for the next sweep, and a few objects handed across threads.
void mutator_thread(Run& run, Heap& heap, Slots& slots, std::uint64_t stream, const MutatorMix& mix,
                    std::atomic<std::uint64_t>& leaked, std::atomic<std::uint64_t>& large_bursts,
                    const StartGun& gun, SharedTally& tally) {
  const Config& cfg = run.config();
  Mutator m(run, heap, &slots, stream, mix, leaked);
  gun.wait();
  while (!run.stopping()) {
    Rng& rng = m.rng();
    if (rng.chance(1, 8) && cfg.max_large > max_small_size) {
      // Large burst: page runs that die together, are reclaimed by whoever sweeps them and
      // released to the OS a cycle later, racing this thread's next requests for pages.
      auto n = rng.between(2, 8);
      for (std::uint64_t k = 0; k < n && !run.stopping(); ++k) {
        if (!m.allocate_sized(
                static_cast<std::size_t>(rng.between(max_small_size + 1, cfg.max_large))))
          break;
      }
      large_bursts.fetch_add(1, std::memory_order_relaxed);
    } else {
      std::size_t size = shared_sizes[rng.below(shared_sizes.size())];
      auto n = rng.between(32, cfg.smoke ? 200 : 600);
      for (std::uint64_t k = 0; k < n && !run.stopping(); ++k) {
        if (!m.allocate_sized(size - rng.below(8), rng.chance(1, 16) ? 64 : 16)) break;
      }
    }
    // Free most of what is held (spans full of pending frees: work for the next sweep), hand
    // a few objects across threads.
    std::size_t keep = m.held() / 10;
    while (m.held() > keep && !run.stopping()) {
      if (!m.free_one()) break;
    }
    for (int k = 0; k < 4 && !run.stopping(); ++k) m.transfer_one(slots);
    m.publish(tally);
  }
  m.free_all();
  m.publish(tally);
}

}  // namespace

int main(int argc, char** argv) {
  Run run("concurrent_sweep_stress", argc, argv, defaults());
  const Config& cfg = run.config();
  Options opts = run.heap_options(2);
  opts.release_after_cycles = 1;  // free page runs go back to the OS one cycle after they are freed
  opts.gc_percent = 25;           // pacing adds cycles of its own between the collector's
  Heap heap(opts);
  run.arm(heap);  // --yield-at-points

  Slots slots(2 * cfg.threads);
  StartGun gun;
  SharedTally tally;
  PauseLog pauses;
  std::atomic<std::uint64_t> leaked{0};
  std::atomic<std::size_t> released_max{0};
  std::atomic<std::uint64_t> large_bursts{0};
  std::vector<std::thread> threads;

  MutatorMix mix;
  mix.max_held = cfg.smoke ? 2000 : 6000;
  for (unsigned i = 0; i < cfg.threads; ++i) {
    threads.emplace_back([&, i] {
      mutator_thread(run, heap, slots, 1000 + i, mix, leaked, large_bursts, gun, tally);
    });
  }
  for (unsigned s = 0; s < cfg.sweep_threads; ++s) {
    threads.emplace_back([&] {
      gun.wait();
      sweeper_loop(run, heap, tally);
    });
  }
  for (unsigned c = 0; c < cfg.collectors; ++c) {
    threads.emplace_back([&, c] {
      gun.wait();
      collector_loop(run, heap, 2000 + c, /*fast=*/false, /*split=*/c % 2 == 1, pauses);
    });
  }
  threads.emplace_back([&] {
    gun.wait();
    verifier_loop(run, heap);
  });

  run.monitor(gun, heap, tally, pauses, [&] {
    std::size_t r = heap.stats().released_bytes;
    if (r > released_max.load()) released_max.store(r);
  });
  for (auto& t : threads) t.join();
  Tally rest;
  slots.drain(run, heap, rest, leaked);
  tally.add(rest);

  // Coverage, not correctness: a run too short to release pages still passes, but says so.
  std::vector<std::string> extra;
  extra.push_back(
      fmt::format("coverage    large bursts {}, most bytes released at once {:.1f} MiB{}",
                  large_bursts.load(), static_cast<double>(released_max.load()) / (1 << 20),
                  released_max.load() == 0 ? " (no release-to-OS observed: run longer)" : ""));
  return run.finish(heap, tally, pauses, leaked.load(), extra);
}
