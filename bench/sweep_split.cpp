// bench/sweep_split.cpp: who sweeps, at 0, 1 and 2 background sweeper threads, and what it does to
// the mutator (docs/performance.md "Sweeping split"; docs/design.md on proportional sweep).
//
// For each sweeper count: a heap with default options but `sweepers` (pacing on, gc_percent=100,
// lazy flush, one P per CPU) and `threads` mutator threads, each churning a private ring of live
// objects of random size 8-512 B (one random slot freed and reallocated per op) for the time
// budget, the sizes drifting through the classes (a window of 128 B moved by 16 B every
// `drift_ops` ops): under ReusePolicy::owner a heap whose live size holds reuses what it frees and
// runs no cycle at all, so the drift makes it grow by the spans of the classes it leaves until a
// cycle sweeps them back to the page heap, as a program moving between phases does. Reported:
// mutator ops/s, cycles, pauses (mean and max exact; p50/p99 as the upper bound of their
// power-of-two histogram bucket) and the spans swept by background sweepers, proportional sweep,
// on-demand sweep, stale-cache flushes and sweep termination. Checks: no heap errors; with 0
// sweepers nothing was swept in the background; cycles ran (the workload allocates far past the 4
// MiB trigger floor) and every cycle's spans were swept by someone.
//
//   sweep_split [--smoke] [--seed N] [--seconds S] [--csv FILE] [--sweepers 0,1,2] [--threads T]
#include <fmt/core.h>
#include <fmt/os.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "driver.hpp"
#include "spanheap/spanheap.hpp"

namespace spanheap::bench {
namespace {

constexpr const char* usage =
    "usage: sweep_split [--smoke] [--seed N] [--seconds S] [--csv FILE] [--sweepers 0,1,2] "
    "[--threads T]\n";

constexpr std::size_t ring_size = 1 << 16;    // ~17 MiB live per thread
constexpr std::uint64_t drift_ops = 1 << 14;  // a thread's ops between two moves of its sizes

struct Row {
  unsigned sweepers = 0;
  unsigned threads = 0;
  double seconds = 0;
  double ops_per_s = 0;
  std::uint64_t cycles = 0;
  double pause_mean_us = 0, pause_p50_us = 0, pause_p99_us = 0, pause_max_us = 0;
  std::uint64_t background = 0, proportional = 0, on_demand = 0, by_flush = 0, termination = 0;
  double peak_mapped_mib = 0;
};

// Upper bound (µs) of the histogram bucket holding the q-quantile of the pauses between `a` and
// `b`: bucket i counts pauses in [2^(i-1), 2^i) µs.
double histogram_quantile_us(const Stats& a, const Stats& b, double q) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < pause_buckets; i++)
    total += b.pause_histogram[i] - a.pause_histogram[i];
  if (total == 0) return 0;
  const auto want = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < pause_buckets; i++) {
    seen += b.pause_histogram[i] - a.pause_histogram[i];
    if (seen >= want) return static_cast<double>(std::uint64_t{1} << i);
  }
  return static_cast<double>(std::uint64_t{1} << (pause_buckets - 1));
}

std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Row run(const DriverArgs& args, unsigned sweepers, unsigned threads, double seconds) {
  Options o = Options::from_env(Options{});
  o.sweepers = sweepers;
  Heap heap(o);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> ready{0};
  std::vector<std::uint64_t> ops(threads, 0);
  std::vector<std::thread> workers;
  Stats before;
  std::uint64_t t0 = 0;
  double peak_mapped = 0;
  for (unsigned t = 0; t < threads; t++) {
    workers.emplace_back([&, t] {
      std::uint64_t rng = args.seed * 1000003 + t;
      std::vector<void*> ring(ring_size);
      auto allocate = [&](std::size_t size) {
        void* p = heap.allocate(size);
        if (p == nullptr) fail(args, fmt::format("allocate({}) failed", size));
        static_cast<volatile char*>(p)[0] = 1;
        return p;
      };
      for (auto& p : ring) p = allocate(8 + splitmix(rng) % 505);
      ready.fetch_add(1);
      while (ready.load() != threads + 1) std::this_thread::yield();  // the start gun
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const std::uint64_t lo = 8 + (n / drift_ops * 16) % 384;  // sizes [lo, lo + 128)
        for (int k = 0; k < 256; k++) {
          const std::uint64_t r = splitmix(rng);
          void*& slot = ring[r % ring_size];
          heap.free(slot);
          slot = allocate(lo + (r >> 32) % 128);
        }
        n += 256;
      }
      ops[t] = n;
      for (void* p : ring) heap.free(p);
    });
  }
  while (ready.load() != threads) std::this_thread::yield();
  before = heap.stats();
  t0 = now_ns();
  ready.store(threads + 1);
  // Sample mapped bytes while the mutators run (Stats has no high-water mark).
  const auto budget_ns = static_cast<std::uint64_t>(seconds * 1e9);
  while (now_ns() - t0 < budget_ns) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    peak_mapped = std::max(peak_mapped, static_cast<double>(heap.stats().mapped_bytes) / (1 << 20));
  }
  stop.store(true);
  const std::uint64_t t1 = now_ns();
  for (auto& w : workers) w.join();
  const Stats after = heap.stats();

  Row row;
  row.sweepers = sweepers;
  row.threads = threads;
  row.seconds = static_cast<double>(t1 - t0) / 1e9;
  std::uint64_t total_ops = 0;
  for (std::uint64_t n : ops) total_ops += n;
  row.ops_per_s = static_cast<double>(total_ops) / row.seconds;
  row.cycles = after.cycles - before.cycles;
  if (row.cycles != 0)
    row.pause_mean_us = static_cast<double>(after.pause_total_ns - before.pause_total_ns) / 1e3 /
                        static_cast<double>(row.cycles);
  row.pause_p50_us = histogram_quantile_us(before, after, 0.5);
  row.pause_p99_us = histogram_quantile_us(before, after, 0.99);
  row.pause_max_us = static_cast<double>(after.pause_max_ns) / 1e3;
  row.background = after.swept_background - before.swept_background;
  row.proportional = after.swept_proportional - before.swept_proportional;
  row.on_demand = after.swept_on_demand - before.swept_on_demand;
  row.by_flush = after.swept_by_flush - before.swept_by_flush;
  row.termination = after.swept_termination - before.swept_termination;
  row.peak_mapped_mib = peak_mapped;

  const std::string where = fmt::format("sweepers={} threads={}", sweepers, threads);
  if (after.errors != 0)
    fail(args, fmt::format("{}: the heap reported {} errors", where, after.errors));
  if (sweepers == 0 && row.background != 0)
    fail(args, fmt::format("{}: {} spans swept in the background with no sweeper", where,
                           row.background));
  if (row.cycles == 0)
    fail(args, fmt::format("{}: no cycle ran; the pacer never triggered", where));
  if (row.background + row.proportional + row.on_demand + row.by_flush + row.termination == 0)
    fail(args, fmt::format("{}: {} cycles but no span was swept", where, row.cycles));
  return row;
}

}  // namespace
}  // namespace spanheap::bench

int main(int argc, char** argv) {
  using namespace spanheap::bench;
  const DriverArgs args = parse_args(argc, argv, {"sweepers", "threads"}, usage);
  const std::vector<unsigned> sweepers =
      parse_list(args.flags.count("sweepers") ? args.flags.at("sweepers") : "0,1,2");
  const unsigned threads =
      args.flags.count("threads") ? static_cast<unsigned>(std::stoul(args.flags.at("threads"))) : 1;
  const double total = args.seconds > 0 ? args.seconds : (args.smoke ? 3.0 : 30.0);
  const double each = total / static_cast<double>(sweepers.size());

  fmt::print("sweep_split: threads={} seed={} {:.1f}s per configuration\n", threads, args.seed,
             each);
  fmt::print(
      "{:>8} {:>8} {:>7} | {:>8} {:>8} {:>8} {:>8} | {:>10} {:>12} {:>9} {:>8} {:>11} | {:>10}\n",
      "sweepers", "Mops/s", "cycles", "p_mean", "p50<=", "p99<=", "p_max", "background",
      "proportional", "on_demand", "by_flush", "termination", "mapped_MiB");
  std::vector<Row> rows;
  for (unsigned s : sweepers) {
    const Row r = run(args, s, threads, each);
    rows.push_back(r);
    fmt::print(
        "{:>8} {:>8.2f} {:>7} | {:>8.1f} {:>8.0f} {:>8.0f} {:>8.1f} | {:>10} {:>12} {:>9} {:>8} "
        "{:>11} | {:>10.1f}\n",
        r.sweepers, r.ops_per_s / 1e6, r.cycles, r.pause_mean_us, r.pause_p50_us, r.pause_p99_us,
        r.pause_max_us, r.background, r.proportional, r.on_demand, r.by_flush, r.termination,
        r.peak_mapped_mib);
    std::fflush(stdout);
  }
  if (!args.csv.empty()) {
    auto out = fmt::output_file(args.csv);
    out.print(
        "sweepers,threads,seconds,ops_per_s,cycles,pause_mean_us,pause_p50_le_us,pause_p99_le_us,"
        "pause_max_us,swept_background,swept_proportional,swept_on_demand,swept_by_flush,"
        "swept_termination,peak_mapped_mib\n");
    for (const Row& r : rows) {
      out.print("{},{},{:.3f},{:.0f},{},{:.3f},{:.0f},{:.0f},{:.3f},{},{},{},{},{},{:.1f}\n",
                r.sweepers, r.threads, r.seconds, r.ops_per_s, r.cycles, r.pause_mean_us,
                r.pause_p50_us, r.pause_p99_us, r.pause_max_us, r.background, r.proportional,
                r.on_demand, r.by_flush, r.termination, r.peak_mapped_mib);
    }
  }
  fmt::print("RESULT sweep_split PASS configs={}\n", rows.size());
  return 0;
}
