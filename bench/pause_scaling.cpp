// bench/pause_scaling.cpp: stop-the-world pause and time-to-first-allocation versus the number of
// Ps, under the lazy and the eager flush policy side by side (the headline of the design; see
// docs/performance.md and docs/design.md "lazy flush").
//
// For each P count and policy: a heap with Options{procs=P, sweepers=0, gc_percent=0}, so nothing
// happens that the driver did not ask for. Before every cycle each P holds a cached span of every
// size class (one object of each class allocated through heap.proc(i); the previous round's
// objects are freed first, so memory stays bounded). Then, alternately:
//   collect   heap.collect(): the pause (Stats::pause_last_ns), the wall time of collect() (pause
//             plus the ragged barrier, which flushes the idle Ps after the restart), and the time
//             from collect()'s return until proc(i).allocate(16) returns, for every P;
//   stale     testing::begin_cycle() without the barrier: the pause, then proc(i).allocate(16)
//             for every P, which now includes that P's own lazy flush (lazy policy only; under
//             eager the caches were flushed inside the pause).
// Each run checks that it measured what it claims (every P cached every class before the cycle,
// one cycle per call, the flush counters moved as the policy says) and fails with a repro line
// otherwise.
//
// The configurations are measured in rounds (--rounds, 5 by default, 1 with --smoke): every heap is
// built first, then each round measures cycles/rounds cycles of every configuration, the order
// rotated round to round, so that the host's drift over the run (and whatever the first
// configuration of a process pays) falls on every P count alike: the headline is a ratio of two
// rows' medians.
//
//   pause_scaling [--smoke] [--seed N] [--seconds S] [--csv FILE] [--rounds N]
//                 [--procs 1,2,4,8,16,32,64] [--cycles N] [--flush lazy,eager]
#include <fmt/core.h>
#include <fmt/os.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "driver.hpp"
#include "spanheap/spanheap.hpp"
#include "spanheap/testing.hpp"

namespace spanheap::bench {
namespace {

constexpr const char* usage =
    "usage: pause_scaling [--smoke] [--seed N] [--seconds S] [--csv FILE] [--rounds N]\n"
    "                     [--procs 1,2,4,8,16,32,64] [--cycles N] [--flush lazy,eager]\n";

struct Row {
  std::string flush;
  unsigned procs = 0;
  unsigned cycles = 0;
  double pause_p50_us = 0, pause_p99_us = 0, pause_max_us = 0;
  double collect_p50_us = 0;
  double ttfa_collect_p50_us = 0, ttfa_collect_p99_us = 0;
  double ttfa_stale_p50_us = 0, ttfa_stale_p99_us = 0;
  std::uint64_t flushes_lazy = 0, flushes_barrier = 0, flushes_eager = 0;
};

constexpr std::size_t fill_align = 8;

class Run {
 public:
  Run(const DriverArgs& args, unsigned procs, FlushPolicy flush)
      : args_(args), procs_(procs), flush_(flush), heap_(options(procs, flush)), live_(procs) {
    // Align 8 (the smallest class's): with the default 16, the 8- and 24-byte requests would be
    // served by a larger class and those classes would never be cached.
    for (const auto& c : testing::size_classes()) {
      if (c.span_class == 0) continue;
      if (testing::size_to_class(c.size, fill_align) != c.span_class)
        fail(args_,
             fmt::format("size {} align {} maps to class {}, not its own class {}", c.size,
                         fill_align, testing::size_to_class(c.size, fill_align), c.span_class));
      class_sizes_.push_back(c.size);
    }
  }

  // Measures `cycles` more cycles of each kind (fewer if `budget_ns` runs out, but at least 3),
  // adding them to this configuration's samples (row() summarises them).
  void measure(unsigned cycles, std::uint64_t budget_ns) {
    refill();
    heap_.collect();  // warm-up: central lists and page heap primed, caches warmed again
    const Stats start = heap_.stats();
    const std::uint64_t t_start = now_ns();
    unsigned done = 0;
    for (; done < cycles; done++) {
      if (done >= 3 && now_ns() - t_start > budget_ns) break;
      // collect(): pause, wall, first allocation after the barrier.
      refill();
      if (done == 0 && cycles_ == 0) check_filled();
      const std::uint64_t before_cycles = heap_.stats().cycles;
      const std::uint64_t t0 = now_ns();
      heap_.collect();
      walls_.push_back(static_cast<double>(now_ns() - t0) / 1e3);
      const Stats s = heap_.stats();
      if (s.cycles != before_cycles + 1)
        fail(args_, fmt::format("collect() ran {} cycles, expected 1", s.cycles - before_cycles));
      pauses_.push_back(static_cast<double>(s.pause_last_ns) / 1e3);
      first_allocations(ttfa_collect_);
      // begin_cycle() without the barrier: the first allocation flushes the stale P itself.
      refill();
      const Stats b = heap_.stats();
      testing::begin_cycle(heap_);
      const Stats a = heap_.stats();
      pauses_.push_back(static_cast<double>(a.pause_last_ns) / 1e3);
      first_allocations(ttfa_stale_);
      const Stats after = heap_.stats();
      if (flush_ == FlushPolicy::lazy && after.flushes_lazy - a.flushes_lazy != procs_)
        fail(args_, fmt::format("lazy: {} of {} stale Ps flushed themselves at first allocation",
                                after.flushes_lazy - a.flushes_lazy, procs_));
      if (flush_ == FlushPolicy::eager && a.flushes_eager - b.flushes_eager != procs_)
        fail(args_, fmt::format("eager: {} of {} caches flushed inside the pause",
                                a.flushes_eager - b.flushes_eager, procs_));
      testing::ragged_barrier(heap_);
    }
    const Stats end = heap_.stats();
    if (end.errors != 0) fail(args_, fmt::format("the heap reported {} errors", end.errors));
    cycles_ += done;
    flushes_lazy_ += end.flushes_lazy - start.flushes_lazy;
    flushes_barrier_ += end.flushes_barrier - start.flushes_barrier;
    flushes_eager_ += end.flushes_eager - start.flushes_eager;
    release_all();
  }

  // This configuration's samples from every round so far.
  Row row() const {
    Row row;
    row.flush = flush_ == FlushPolicy::lazy ? "lazy" : "eager";
    row.procs = procs_;
    row.cycles = cycles_;
    row.pause_p50_us = quantile(pauses_, 0.5);
    row.pause_p99_us = quantile(pauses_, 0.99);
    row.pause_max_us = quantile(pauses_, 1.0);
    row.collect_p50_us = quantile(walls_, 0.5);
    row.ttfa_collect_p50_us = quantile(ttfa_collect_, 0.5);
    row.ttfa_collect_p99_us = quantile(ttfa_collect_, 0.99);
    row.ttfa_stale_p50_us = quantile(ttfa_stale_, 0.5);
    row.ttfa_stale_p99_us = quantile(ttfa_stale_, 0.99);
    row.flushes_lazy = flushes_lazy_;
    row.flushes_barrier = flushes_barrier_;
    row.flushes_eager = flushes_eager_;
    return row;
  }

 private:
  static Options options(unsigned procs, FlushPolicy flush) {
    Options o;
    o.procs = procs;
    o.sweepers = 0;
    o.gc_percent = 0;
    o.flush = flush;
    return o;
  }

  // Frees the previous round's objects (their slots come back at the next sweep) and allocates
  // one object of every class through every P, so each P caches a span of every class.
  void refill() {
    release_all();
    for (unsigned i = 0; i < procs_; i++) {
      Proc p = heap_.proc(i);
      for (std::size_t size : class_sizes_) live_[i].push_back(allocate(p, size));
    }
  }

  void release_all() {
    for (unsigned i = 0; i < procs_; i++) {
      Proc p = heap_.proc(i);
      for (void* obj : live_[i]) p.free(obj);
      live_[i].clear();
    }
  }

  void* allocate(Proc& p, std::size_t size) {
    void* obj = p.allocate(size, fill_align);
    if (obj == nullptr) fail(args_, fmt::format("proc({}).allocate({}) failed", p.index(), size));
    return obj;
  }

  // Time from here until proc(i).allocate returns, for every P in turn.
  void first_allocations(std::vector<double>& out) {
    for (unsigned i = 0; i < procs_; i++) {
      Proc p = heap_.proc(i);
      const std::uint64_t t0 = now_ns();
      void* obj = allocate(p, 16);
      out.push_back(static_cast<double>(now_ns() - t0) / 1e3);
      live_[i].push_back(obj);
    }
  }

  // The premise of the measurement: every P caches a span of every size class.
  void check_filled() {
    const testing::HeapSnapshot snap = testing::snapshot(heap_);
    for (const testing::ProcInfo& p : snap.procs) {
      if (p.index >= procs_) continue;
      if (p.cached_spans < class_sizes_.size())
        fail(args_,
             fmt::format("P {} caches {} spans before the cycle, expected {} (one per class)",
                         p.index, p.cached_spans, class_sizes_.size()));
    }
  }

  const DriverArgs& args_;
  unsigned procs_;
  FlushPolicy flush_;
  Heap heap_;
  std::vector<std::vector<void*>> live_;
  std::vector<std::size_t> class_sizes_;
  // Every round's samples and counts.
  std::vector<double> pauses_, walls_, ttfa_collect_, ttfa_stale_;
  unsigned cycles_ = 0;
  std::uint64_t flushes_lazy_ = 0, flushes_barrier_ = 0, flushes_eager_ = 0;
};

}  // namespace
}  // namespace spanheap::bench

int main(int argc, char** argv) {
  using namespace spanheap::bench;
  const DriverArgs args = parse_args(argc, argv, {"procs", "cycles", "flush", "rounds"}, usage);
  const std::vector<unsigned> procs =
      parse_list(args.flags.count("procs") ? args.flags.at("procs") : "1,2,4,8,16,32,64");
  const unsigned cycles = args.flags.count("cycles")
                              ? static_cast<unsigned>(std::stoul(args.flags.at("cycles")))
                              : (args.smoke ? 10 : 200);
  std::vector<spanheap::FlushPolicy> policies;
  {
    const std::string f = args.flags.count("flush") ? args.flags.at("flush") : "lazy,eager";
    if (f.find("lazy") != std::string::npos) policies.push_back(spanheap::FlushPolicy::lazy);
    if (f.find("eager") != std::string::npos) policies.push_back(spanheap::FlushPolicy::eager);
    if (policies.empty()) fail(args, "--flush takes lazy, eager or lazy,eager");
  }
  const unsigned rounds = args.flags.count("rounds")
                              ? static_cast<unsigned>(std::stoul(args.flags.at("rounds")))
                              : (args.smoke ? 1 : 5);
  if (rounds == 0 || rounds > cycles) fail(args, "--rounds takes 1 to --cycles");
  const double seconds = args.seconds > 0 ? args.seconds : (args.smoke ? 10.0 : 120.0);
  const auto budget = static_cast<std::uint64_t>(
      seconds * 1e9 / static_cast<double>(procs.size() * policies.size() * rounds));

  fmt::print(
      "pause_scaling: cycles={} rounds={} seed={} budget={}s (pause and first-allocation times in "
      "us)\n",
      cycles, rounds, args.seed, seconds);
  fmt::print("{:>5} {:>4} {:>6} | {:>9} {:>9} {:>9} | {:>9} | {:>10} {:>10} | {:>10} {:>10}\n",
             "flush", "P", "cycles", "pause_p50", "pause_p99", "pause_max", "collect", "ttfa_p50",
             "ttfa_p99", "stale_p50", "stale_p99");
  std::vector<std::unique_ptr<Run>> runs;
  for (unsigned p : procs) {
    for (spanheap::FlushPolicy flush : policies)
      runs.push_back(std::make_unique<Run>(args, p, flush));
  }
  // Round r starts at configuration r (mod their number): no configuration is always first.
  for (unsigned r = 0; r < rounds; r++) {
    const unsigned share = cycles / rounds + (r < cycles % rounds ? 1 : 0);
    for (std::size_t k = 0; k < runs.size(); k++)
      runs[(r + k) % runs.size()]->measure(share, budget);
  }
  std::vector<Row> rows;
  for (const auto& run : runs) {
    {
      const Row r = run->row();
      rows.push_back(r);
      fmt::print(
          "{:>5} {:>4} {:>6} | {:>9.2f} {:>9.2f} {:>9.2f} | {:>9.1f} | {:>10.2f} {:>10.2f} | "
          "{:>10.2f} {:>10.2f}\n",
          r.flush, r.procs, r.cycles, r.pause_p50_us, r.pause_p99_us, r.pause_max_us,
          r.collect_p50_us, r.ttfa_collect_p50_us, r.ttfa_collect_p99_us, r.ttfa_stale_p50_us,
          r.ttfa_stale_p99_us);
      std::fflush(stdout);
    }
  }
  if (!args.csv.empty()) {
    auto out = fmt::output_file(args.csv);
    out.print(
        "flush,procs,cycles,pause_p50_us,pause_p99_us,pause_max_us,collect_p50_us,"
        "ttfa_collect_p50_us,ttfa_collect_p99_us,ttfa_stale_p50_us,ttfa_stale_p99_us,"
        "flushes_lazy,flushes_barrier,flushes_eager\n");
    for (const Row& r : rows) {
      out.print("{},{},{},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f},{},{},{}\n",
                r.flush, r.procs, r.cycles, r.pause_p50_us, r.pause_p99_us, r.pause_max_us,
                r.collect_p50_us, r.ttfa_collect_p50_us, r.ttfa_collect_p99_us, r.ttfa_stale_p50_us,
                r.ttfa_stale_p99_us, r.flushes_lazy, r.flushes_barrier, r.flushes_eager);
    }
  }
  // The headline ratio, when both policies ran at the largest P count.
  const unsigned pmax = procs.back();
  double lazy = 0, eager = 0;
  for (const Row& r : rows) {
    if (r.procs != pmax) continue;
    (r.flush == "lazy" ? lazy : eager) = r.pause_p50_us;
  }
  if (lazy > 0 && eager > 0)
    fmt::print("eager/lazy pause p50 at {} Ps: {:.1f}x\n", pmax, eager / lazy);
  fmt::print("RESULT pause_scaling PASS configs={}\n", rows.size());
  return 0;
}
