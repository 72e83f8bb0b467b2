// stw_flush_stress: stop-the-world cycles forced as fast as possible and at random intervals while
// mutators allocate, write content cookies, hand objects to each other through shared slots (so
// frees cross threads) and check every object before freeing it; half of the mutators sleep
// outside the heap between bursts, so their Ps sit idle and stale until the ragged barrier flushes
// them or they flush themselves at their next acquire; background sweepers run throughout; a
// verifier thread stops the world for verify() and for the snapshot oracle. See docs/stress.md.
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <thread>
#include <vector>

using namespace spanheap;
using namespace spanheap::stress;

namespace {

Defaults defaults() {
  Defaults d;
  d.normal.threads = 4;
  d.normal.seconds = 10;
  d.normal.sweepers = 2;
  d.normal.collectors = 2;
  d.normal.verify_every_ms = 100;
  d.normal.stw_every_us = 200;
  d.smoke = d.normal;
  d.smoke.threads = 3;
  d.smoke.seconds = under_sanitizer() ? 3 : 2;
  d.smoke.verify_every_ms = 50;
  d.smoke.max_large = std::size_t{256} << 10;
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  Run run("stw_flush_stress", argc, argv, defaults());
  const Config& cfg = run.config();
  Heap heap(run.heap_options(cfg.threads));  // one P per mutator: every P can go idle
  run.arm(heap);                             // --yield-at-points

  Slots slots(4 * cfg.threads);
  StartGun gun;
  SharedTally tally;
  PauseLog pauses;
  std::atomic<std::uint64_t> leaked{0};
  std::vector<std::thread> threads;

  MutatorMix mix;
  mix.max_held = cfg.smoke ? 300 : 1000;
  for (unsigned i = 0; i < cfg.threads; ++i) {
    bool sleeper = i % 2 == 1;
    threads.emplace_back([&, i, sleeper] {
      Mutator m(run, heap, &slots, 1000 + i, mix, leaked);
      gun.wait();
      std::uint64_t until_sleep = m.rng().between(10, 200);
      for (std::uint64_t steps = 1; !run.stopping(); ++steps) {
        if (!m.step()) break;
        if (steps % 256 == 0) m.publish(tally);
        if (sleeper && --until_sleep == 0) {
          // Idle outside the heap: this P is left for the ragged barrier (or its own next acquire).
          m.publish(tally);
          run.nap(std::chrono::microseconds(m.rng().between(20, cfg.smoke ? 1000 : 3000)));
          until_sleep = m.rng().between(10, 200);
          if (!m.allocate_one()) break;  // the first acquire after waking: flush lazily if stale
        }
      }
      m.free_all();
      m.publish(tally);
    });
  }
  for (unsigned c = 0; c < cfg.collectors; ++c) {
    threads.emplace_back([&, c] {
      gun.wait();
      collector_loop(run, heap, 2000 + c, /*fast=*/c == 0, /*split=*/c != 0, pauses);
    });
  }
  threads.emplace_back([&] {
    gun.wait();
    verifier_loop(run, heap);
  });

  run.monitor(gun, heap, tally, pauses);
  for (auto& t : threads) t.join();
  Tally rest;
  slots.drain(run, heap, rest, leaked);
  tally.add(rest);
  return run.finish(heap, tally, pauses, leaked.load());
}
