// heap_lifecycle_stress: heaps are created and destroyed over and over while their background
// sweepers have work. Each generation makes a heap (1 to --procs Ps, 1 to --sweepers background
// sweepers), gives it work in a few rounds — each round from one kind of caller: a crew of threads
// that exit before the heap dies, a pool of long-lived threads that outlive every heap (their P
// affinity names heaps long dead), or explicit heap.proc(i) handles driven from one thread — and
// after each round starts a cycle, so spans full of pending frees wait unswept for the sweepers.
// Then the heap is destroyed at once (its sweepers mid-sweep), or after a short gap, or once
// sweeping is done (its sweepers parked), with some objects still live. Oracles: every heap's
// accounting and error reports before it dies, verify() now and then, content cookies, the
// process's thread count back at its baseline after every destruction (a sweeper that outlives
// its heap), a watchdog on every destruction, and ASan / TSan on everything a dead heap's thread
// touches. See docs/stress.md.
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace spanheap;
using namespace spanheap::stress;

namespace {

Defaults defaults() {
  Defaults d;
  d.normal.threads = 2;  // crew threads per round, and long-lived pool threads
  d.normal.seconds = 10;
  d.normal.sweepers = 3;  // at most this many per heap (at least 1)
  d.normal.procs = 4;     // at most this many Ps per heap
  d.normal.collectors = 0;
  d.normal.verify_every_ms = 0;
  d.smoke = d.normal;
  d.smoke.seconds = under_sanitizer() ? 3 : 2;
  d.smoke.max_large = std::size_t{256} << 10;
  return d;
}

// A few shared classes (their spans meet on the same central lists) and some large objects.
constexpr std::array<std::size_t, 6> shared_sizes = {16, 48, 256, 1024, 4096, 16384};

// Threads of this process, from the kernel (0 when it cannot be read).
unsigned thread_count() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return static_cast<unsigned>(std::stoul(line.substr(8)));
  }
  return 0;
}

// The counters of heaps that are gone, summed for the progress line and the summary.
void accumulate(Stats& a, const Stats& s) {
  a.cycles += s.cycles;
  a.allocations += s.allocations;
  a.frees += s.frees;
  a.pause_total_ns += s.pause_total_ns;
  a.pause_max_ns = std::max(a.pause_max_ns, s.pause_max_ns);
  for (std::size_t i = 0; i < pause_buckets; ++i) a.pause_histogram[i] += s.pause_histogram[i];
  a.flushes_lazy += s.flushes_lazy;
  a.flushes_barrier += s.flushes_barrier;
  a.flushes_eager += s.flushes_eager;
  a.swept_background += s.swept_background;
  a.swept_proportional += s.swept_proportional;
  a.swept_on_demand += s.swept_on_demand;
  a.swept_by_flush += s.swept_by_flush;
  a.swept_termination += s.swept_termination;
  a.collections += s.collections;
  a.errors += s.errors;
}

// One burst: fill spans of one shared class (or a few large objects), then free most of it so the
// next cycle leaves those spans unswept, full of pending frees.
void burst(Mutator& m, const Config& cfg) {
  Rng& rng = m.rng();
  if (rng.chance(1, 8) && cfg.max_large > max_small_size) {
    for (auto n = rng.between(1, 4); n > 0; --n)
      if (!m.allocate_sized(
              static_cast<std::size_t>(rng.between(max_small_size + 1, cfg.max_large))))
        return;
  } else {
    const std::size_t size = shared_sizes[rng.below(shared_sizes.size())];
    for (auto n = rng.between(64, cfg.smoke ? 400 : 1200); n > 0; --n)
      if (!m.allocate_sized(size - rng.below(8))) return;
  }
  const std::size_t keep = m.held() / 10;
  while (m.held() > keep)
    if (!m.free_one()) return;
}

// Long-lived threads, started once: each round of a generation that picks them, every one does a
// burst on that generation's heap. They outlive every heap, so their thread-local P affinity
// always names heaps that are gone.
class Pool {
 public:
  Pool(Run& run, unsigned n, std::atomic<std::uint64_t>& leaked) : run_(run), leaked_(leaked) {
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { main(i); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // One round on `heap`; returns once every pool thread has done its burst.
  void round(Heap& heap, SharedTally& tally, std::uint64_t stream) {
    std::unique_lock lock(mu_);
    heap_ = &heap;
    tally_ = &tally;
    stream_ = stream;
    done_ = 0;
    ++round_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return done_ == threads_.size(); });
    heap_ = nullptr;
  }

 private:
  void main(unsigned i) {
    std::uint64_t seen = 0;
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return quit_ || round_ != seen; });
      if (quit_) return;
      seen = round_;
      Heap& heap = *heap_;
      SharedTally& tally = *tally_;
      const std::uint64_t stream = stream_ + i;
      lock.unlock();
      {
        Mutator m(run_, heap, nullptr, stream, MutatorMix{}, leaked_);
        burst(m, run_.config());
        // Half the time the objects left are freed, otherwise they die with the heap.
        if (m.rng().chance(1, 2)) m.free_all();
        m.publish(tally);
      }
      lock.lock();
      ++done_;
      cv_.notify_all();
    }
  }

  Run& run_;
  std::atomic<std::uint64_t>& leaked_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  Heap* heap_ = nullptr;
  SharedTally* tally_ = nullptr;
  std::uint64_t stream_ = 0;
  std::uint64_t round_ = 0;
  std::size_t done_ = 0;
  bool quit_ = false;
};

// What the generations covered (for the summary's coverage line).
struct Coverage {
  std::atomic<std::uint64_t> heaps{0}, mid_sweep{0}, after_gap{0}, parked{0}, with_live{0};
  std::atomic<std::uint64_t> crew_rounds{0}, pool_rounds{0}, proc_rounds{0};
};

// One round of work on `heap`, all of it from one kind of caller; sets `live_left` when objects
// stay behind to die with the heap.
void work_round(Run& run, Heap& heap, Pool& pool, Rng& rng, std::uint64_t stream,
                SharedTally& heap_tally, std::atomic<std::uint64_t>& leaked, Coverage& cov,
                bool& live_left) {
  const Config& cfg = run.config();
  switch (rng.below(3)) {
    case 0: {  // a crew of threads that leave before the heap dies
      std::vector<std::thread> crew;
      for (unsigned i = 0; i < cfg.threads; ++i) {
        crew.emplace_back([&, i] {
          Mutator m(run, heap, nullptr, stream + 100 + i, MutatorMix{}, leaked);
          burst(m, cfg);
          m.free_all();
          m.publish(heap_tally);
        });
      }
      for (auto& t : crew) t.join();
      cov.crew_rounds.fetch_add(1);
      break;
    }
    case 1:
      pool.round(heap, heap_tally, stream + 200);
      live_left = true;
      cov.pool_rounds.fetch_add(1);
      break;
    default: {  // explicit P handles from this thread, one P after another
      MutatorMix mix;
      mix.proc_handle_percent = 100;
      Mutator m(run, heap, nullptr, stream + 300, mix, leaked);
      burst(m, cfg);
      m.publish(heap_tally);
      live_left = live_left || m.held() != 0;
      cov.proc_rounds.fetch_add(1);
      break;
    }
  }
}

// The heap's books must balance before it dies (everything the driver did, and nothing
// else, was counted), and nothing may have been reported.
void check_books(Run& run, Heap& heap, const SharedTally& heap_tally, std::uint64_t gen, Rng& rng) {
  run.check_reports();
  Stats s = heap.stats();
  if (s.allocations != heap_tally.allocs.load() || s.frees != heap_tally.frees.load())
    run.fail(fmt::format("heap {} counted {} allocations and {} frees; the driver made {} and {}",
                         gen, s.allocations, s.frees, heap_tally.allocs.load(),
                         heap_tally.frees.load()));
  if (rng.chance(1, 4)) {
    VerifyResult vr = heap.verify();
    if (!vr.ok()) run.fail(fmt::format("verify() of heap {}:\n{}", gen, vr.to_string()));
  }
}

// When to destroy it: at once (sweepers mid-sweep), after a short gap, or once sweeping is
// done (sweepers parked on their epoch word).
void wait_before_destroying(Heap& heap, Rng& rng, Coverage& cov) {
  switch (rng.below(4)) {
    case 0:
      std::this_thread::sleep_for(std::chrono::microseconds(rng.below(500)));
      cov.after_gap.fetch_add(1);
      break;
    case 1:
      for (int i = 0; i < 20000 && !testing::sweep_done(heap); ++i)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      cov.parked.fetch_add(1);
      break;
    default:
      break;
  }
}

// Every sweeper of the heap was joined: the process is back to its threads before the heap.
void check_sweepers_left(Run& run, unsigned baseline_threads, std::chrono::seconds exit_grace,
                         std::uint64_t gen, unsigned sweepers) {
  unsigned now = thread_count();
  for (auto until = std::chrono::steady_clock::now() + exit_grace;
       now > baseline_threads && std::chrono::steady_clock::now() < until; now = thread_count())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (now > baseline_threads)
    run.fail(fmt::format(
        "{} threads still run {} s after heap {} ({} sweepers) was destroyed; {} before it "
        "was created: a sweeper outlived its heap",
        now, exit_grace.count(), gen, sweepers, baseline_threads));
}

// The summary's lifecycle line, and a warning when no heap died mid-sweep.
std::vector<std::string> summary_lines(const Coverage& cov) {
  std::vector<std::string> extra;
  extra.push_back(fmt::format(
      "lifecycle   {} heaps destroyed: {} with sweeping unfinished, {} after a gap, {} once "
      "sweeping was done, {} with live objects; rounds by crews {}, by the pool {}, through "
      "proc(i) {}",
      cov.heaps.load(), cov.mid_sweep.load(), cov.after_gap.load(), cov.parked.load(),
      cov.with_live.load(), cov.crew_rounds.load(), cov.pool_rounds.load(),
      cov.proc_rounds.load()));
  if (cov.mid_sweep.load() == 0)
    extra.push_back("coverage    no heap was destroyed with sweeping unfinished: run longer");
  return extra;
}

}  // namespace

int main(int argc, char** argv) {
  Run run("heap_lifecycle_stress", argc, argv, defaults());
  Options base = run.heap_options(4);
  const Config& cfg = run.config();
  if (cfg.sweepers == 0) {
    fmt::print(stderr, "heap_lifecycle_stress: --sweepers must be at least 1 (it is the point)\n");
    return 2;
  }

  StartGun gun;
  SharedTally tally;
  PauseLog pauses;
  std::atomic<std::uint64_t> leaked{0};
  Coverage cov;
  std::mutex gone_mu;
  Stats gone;  // the heaps destroyed so far; guarded by gone_mu
  // Under sanitizers a thread's exit is slower to show in /proc; a sweeper that outlives its heap
  // never leaves at all.
  const auto exit_grace = std::chrono::seconds(under_sanitizer() ? 10 : 3);

  std::thread generations([&] {
    Pool pool(run, cfg.threads, leaked);
    Rng rng(cfg.seed, 1);
    gun.wait();
    for (std::uint64_t gen = 0; !run.stopping(); ++gen) {
      const unsigned baseline_threads = thread_count();
      Options o = base;
      o.procs = 1 + static_cast<unsigned>(rng.below(cfg.procs));
      o.sweepers = 1 + static_cast<unsigned>(rng.below(cfg.sweepers));
      o.gc_percent = rng.chance(1, 2) ? 0 : 25;  // pacing adds cycles of its own mid-round
      auto heap = std::make_unique<Heap>(o);
      SharedTally heap_tally;
      bool live_left = false;
      const auto rounds = rng.between(1, 3);
      for (std::uint64_t r = 0; r < rounds && !run.failed(); ++r) {
        const std::uint64_t stream = (gen << 16) + (r << 8);
        work_round(run, *heap, pool, rng, stream, heap_tally, leaked, cov, live_left);
        auto t0 = std::chrono::steady_clock::now();
        heap->collect();  // the burst's pending frees become unswept spans: the sweepers' work
        pauses.add({static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                   std::chrono::steady_clock::now() - t0)
                                                   .count())});
        pauses.count.fetch_add(1, std::memory_order_relaxed);
      }
      check_books(run, *heap, heap_tally, gen, rng);
      wait_before_destroying(*heap, rng, cov);
      if (!testing::sweep_done(*heap)) cov.mid_sweep.fetch_add(1);
      if (live_left) cov.with_live.fetch_add(1);
      Tally done{heap_tally.allocs.load(),    heap_tally.frees.load(),  heap_tally.bytes.load(),
                 heap_tally.transfers.load(), heap_tally.checks.load(), heap_tally.sweeps.load()};
      tally.add(done);
      const Stats s = heap->stats();
      run.collect_begins(0);  // the watchdog bounds the destruction
      heap.reset();
      run.collect_ends(0);
      {
        std::lock_guard lock(gone_mu);
        accumulate(gone, s);
      }
      cov.heaps.fetch_add(1);
      check_sweepers_left(run, baseline_threads, exit_grace, gen, o.sweepers);
    }
  });

  run.monitor(
      gun,
      [&] {
        std::lock_guard lock(gone_mu);
        return gone;
      },
      tally, pauses);
  generations.join();
  run.check_reports();

  return run.summarize(gone, tally, pauses, summary_lines(cov));
}
