// thread_churn_stress: threads are created and destroyed every round (mimalloc's test-stress
// style), more threads than Ps (8 threads on 2 Ps by default), so Ps pass from thread to thread;
// objects survive their thread in shared survivor slots and are checked and freed by a thread of a
// later round; some operations go through explicit heap.proc(i) handles, and some threads force a
// cycle themselves. A random-interval collector, background sweepers and the verifier run across
// rounds. See docs/stress.md.
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <fmt/format.h>

#include <thread>
#include <vector>

using namespace spanheap;
using namespace spanheap::stress;

namespace {

Defaults defaults() {
  Defaults d;
  d.normal.threads = 8;
  d.normal.seconds = 10;
  d.normal.sweepers = 1;
  d.normal.collectors = 1;
  d.normal.procs = 2;
  d.normal.verify_every_ms = 150;
  d.normal.stw_every_us = 500;
  d.smoke = d.normal;
  d.smoke.seconds = under_sanitizer() ? 3 : 2;
  d.smoke.verify_every_ms = 100;
  d.smoke.max_large = std::size_t{256} << 10;
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  Run run("thread_churn_stress", argc, argv, defaults());
  const Config& cfg = run.config();
  Heap heap(run.heap_options(2));
  run.arm(heap);  // --yield-at-points

  Slots transfer(2 * cfg.threads);
  Slots survivors(8 * cfg.threads);
  StartGun gun;
  SharedTally tally;
  PauseLog pauses;
  std::atomic<std::uint64_t> leaked{0};
  std::atomic<std::uint64_t> rounds{0}, created{0}, survived{0};
  std::vector<std::thread> background;

  MutatorMix mix;
  mix.max_held = 400;
  mix.proc_handle_percent = 5;
  for (unsigned c = 0; c < cfg.collectors; ++c) {
    background.emplace_back([&, c] {
      gun.wait();
      collector_loop(run, heap, 2000 + c, /*fast=*/false, /*split=*/c % 2 == 1, pauses);
    });
  }
  background.emplace_back([&] {
    gun.wait();
    verifier_loop(run, heap);
  });

  // Rounds run on their own thread so the main thread stays free to monitor.
  std::thread rounds_driver([&] {
    gun.wait();
    for (std::uint64_t round = 0; !run.stopping(); ++round) {
      std::vector<std::thread> crew;
      for (unsigned i = 0; i < cfg.threads; ++i) {
        crew.emplace_back([&, round, i] {
          Mutator m(run, heap, &transfer, (round << 16) + i, mix, leaked);
          Rng& rng = m.rng();
          auto steps = rng.between(50, cfg.smoke ? 400 : 1500);
          bool collect_once = rng.chance(1, 6);
          for (std::uint64_t k = 0; k < steps && !run.stopping(); ++k) {
            if (!m.step()) break;
            if (collect_once && k == steps / 2)
              heap.collect();  // a short-lived thread forcing a cycle
          }
          // Leave some objects behind for a later round's threads; adopt what is displaced.
          auto leave = rng.between(0, 8);
          for (std::uint64_t k = 0; k < leave && !run.stopping(); ++k) {
            void* p = m.give_away();
            if (p == nullptr) break;
            survived.fetch_add(1, std::memory_order_relaxed);
            void* q = survivors.exchange(rng.below(survivors.size()), p);
            if (q != nullptr && !m.adopt(q)) break;
          }
          m.free_all();
          m.publish(tally);
        });
      }
      created.fetch_add(crew.size(), std::memory_order_relaxed);
      for (auto& t : crew) t.join();
      rounds.fetch_add(1, std::memory_order_relaxed);
    }
  });

  run.monitor(gun, heap, tally, pauses);
  rounds_driver.join();
  for (auto& t : background) t.join();
  Tally rest;
  transfer.drain(run, heap, rest, leaked);
  survivors.drain(run, heap, rest, leaked);
  tally.add(rest);

  std::vector<std::string> extra;
  extra.push_back(fmt::format(
      "churn       {} rounds, {} threads created and destroyed, {} objects outlived their thread",
      rounds.load(), created.load(), survived.load()));
  return run.finish(heap, tally, pauses, leaked.load(), extra);
}
