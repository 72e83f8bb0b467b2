// thread_churn_stress: threads are created and destroyed every round (mimalloc's test-stress
// style), more threads than Ps (8 threads on 2 Ps by default), so Ps pass from thread to thread;
// objects survive their thread in shared survivor slots and are checked and freed by a thread of a
// later round; some operations go through explicit heap.proc(i) handles, and some threads force a
// cycle themselves. A random-interval collector, background sweepers and the verifier run across
// rounds. A third of the threads also alternate with a second heap (no allocation hooks, so
// their calls there take the fast paths and bind): a thread's binding outlives its switch to the
// other heap, and on its return it takes its own binding back while other threads revoke it and
// cycles of either heap revoke every binding. See docs/stress.md.
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cstring>
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

// A few objects of the second heap, each filled with a byte of its own and checked before its
// free; now and then a cycle of that heap (which revokes every binding in it). Returns false
// after recording a failure.
bool side_calls(Run& run, Heap& side, Rng& rng, std::atomic<std::uint64_t>& side_allocs) {
  void* objs[3];
  std::size_t sizes[3];
  for (int j = 0; j < 3; ++j) {
    sizes[j] = 16 + rng.below(497);
    objs[j] = side.allocate(sizes[j]);
    if (objs[j] == nullptr) {
      run.fail(fmt::format("second heap: allocate({}) returned nullptr", sizes[j]));
      return false;
    }
    side_allocs.fetch_add(1, std::memory_order_relaxed);
    std::memset(objs[j], 0x40 + j, sizes[j]);
  }
  for (int j = 0; j < 3; ++j) {
    const auto* b = static_cast<const unsigned char*>(objs[j]);
    for (std::size_t k = 0; k < sizes[j]; ++k) {
      if (b[k] != 0x40 + j) {
        run.fail(fmt::format("second heap: byte {} of a {}-byte object changed while live", k,
                             sizes[j]));
        return false;
      }
    }
    side.free(objs[j]);
  }
  if (rng.chance(1, 200)) side.collect();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Run run("thread_churn_stress", argc, argv, defaults());
  const Config& cfg = run.config();
  Heap heap(run.heap_options(2));
  run.arm(heap);  // --yield-at-points
  Options side_options = run.heap_options(2);
  side_options.debug.clobber_freed = false;  // the hooks would keep its calls off the fast paths
  side_options.debug.poison_freed = false;
  Heap side(side_options);
  std::atomic<std::uint64_t> side_allocs{0};

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
          const bool alternate = rng.chance(1, 3);
          for (std::uint64_t k = 0; k < steps && !run.stopping(); ++k) {
            if (!m.step()) break;
            if (alternate && k % 8 == 0 && !side_calls(run, side, rng, side_allocs)) break;
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

  // The second heap: every object freed, every count exact, its structure sound.
  const Stats ss = side.stats();
  if (ss.allocations != side_allocs.load() || ss.frees != side_allocs.load())
    run.fail(fmt::format("second heap: stats count {} allocations and {} frees, {} were made",
                         ss.allocations, ss.frees, side_allocs.load()));
  if (const VerifyResult v = side.verify(); !v.ok())
    run.fail("second heap: verify(): " + v.to_string());

  std::vector<std::string> extra;
  extra.push_back(fmt::format(
      "churn       {} rounds, {} threads created and destroyed, {} objects outlived their thread",
      rounds.load(), created.load(), survived.load()));
  extra.push_back(
      fmt::format("second heap {} objects by threads alternating between the heaps, "
                  "{} revocations there",
                  side_allocs.load(), ss.revocations));
  return run.finish(heap, tally, pauses, leaked.load(), extra);
}
