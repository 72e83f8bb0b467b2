// The end of a stress run: the final sweep and the heap's accounting against the driver's own
// counts (Run::finish), then the summary and the RESULT line (Run::summarize; docs/stress.md).
#include "format.hpp"
#include "harness.hpp"
#include "harness_internal.hpp"
#include "yield_points.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace spanheap::stress {
using namespace detail;

int Run::finish(Heap& heap, const SharedTally& tally, const PauseLog& pauses,
                std::uint64_t outstanding, const std::vector<std::string>& extra_lines) {
  using namespace std::chrono;
  check_reports();

  // Let one more cycle reclaim every free, then sweep to the end so the accounting is exact.
  heap.collect();
  auto sweep_deadline = steady_clock::now() + seconds(60);
  while (true) {
    while (heap.sweep_one()) {
    }
    if (testing::sweep_done(heap)) break;
    if (steady_clock::now() > sweep_deadline) {
      fail("sweep_done() still false 60 s after the run ended with sweep_one() finding nothing");
      break;
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  Stats s = heap.stats();
  std::uint64_t allocs = tally.allocs.load(), frees = tally.frees.load();
  if (s.allocations != allocs || s.frees != frees) {
    fail(fmt::format("heap counted {} allocations and {} frees; the driver made {} and {}",
                     s.allocations, s.frees, allocs, frees));
  }
  if (s.live_objects != outstanding || s.pending_frees != 0) {
    fail(fmt::format(
        "after the final sweep the heap has {} live objects and {} pending frees; the driver "
        "still holds {} objects",
        s.live_objects, s.pending_frees, outstanding));
  }
  if (outstanding == 0 && s.live_bytes != 0) {
    fail(fmt::format("every object is freed and swept but live_bytes = {}", s.live_bytes));
  }
  VerifyResult vr = heap.verify();
  if (!vr.ok())
    fail(fmt::format("final verify() found {} violations:\n{}", vr.violations.size(),
                     vr.to_string()));
  check_reports();
  return summarize(heap.stats(), tally, pauses, extra_lines);
}

int Run::summarize(const Stats& s, const SharedTally& tally, const PauseLog& pauses,
                   const std::vector<std::string>& extra_lines) {
  // The timed loop's length (the wind-down is not part of the rates).
  const double elapsed = std::chrono::duration<double>(ended_ - start_).count();
  std::uint64_t allocs = tally.allocs.load(), frees = tally.frees.load();
  auto coll = pauses.sorted();
  std::uint64_t hist_total = 0;
  for (auto c : s.pause_histogram) hist_total += c;
  double ops = static_cast<double>(allocs + frees);
  bool ok = !failed();
  fmt::print("== {} summary: seed {}, {:.1f} s, preset {}, sanitizer {} ==\n", driver_, cfg_.seed,
             elapsed, build_preset().empty() ? "?" : build_preset(), sanitizer_name());
  fmt::print("  result      {}\n", ok ? "PASS" : fmt::format("FAIL ({} failures)", failures()));
  fmt::print("  cycles      {} ({:.1f}/s); collect() calls by the driver {}\n", s.cycles,
             static_cast<double>(s.cycles) / std::max(elapsed, 1e-9), coll.size());
  fmt::print(
      "  ops         {} allocs ({} zeroed, checked), {} frees, {} sweep_one, {} transfers, {} "
      "content checks: {} ops/s, {} alloc/s\n",
      allocs, tally.zeroed.load(), frees, tally.sweeps.load(), tally.transfers.load(),
      tally.checks.load(), human(ops / std::max(elapsed, 1e-9)),
      human(static_cast<double>(allocs) / std::max(elapsed, 1e-9)));
  fmt::print("  pause       heap histogram ({} pauses): p50 {}, p99 {}, max {}\n", hist_total,
             histogram_percentile(s, 0.50), histogram_percentile(s, 0.99), micros(s.pause_max_ns));
  fmt::print("  collect()   driver timing ({} calls): p50 {}, p99 {}, max {}\n", coll.size(),
             micros(exact_percentile(coll, 0.50)), micros(exact_percentile(coll, 0.99)),
             micros(coll.empty() ? 0 : coll.back()));
  fmt::print("  flushes     lazy {}, barrier {}, eager {}\n", s.flushes_lazy, s.flushes_barrier,
             s.flushes_eager);
  fmt::print(
      "  swept       background {}, proportional {}, on demand {}, by flush {}, termination {}\n",
      s.swept_background, s.swept_proportional, s.swept_on_demand, s.swept_by_flush,
      s.swept_termination);
  fmt::print("  memory      mapped {}, released {}, reserved {}, span {}\n", mib(s.mapped_bytes),
             mib(s.released_bytes), mib(s.reserved_bytes), mib(s.span_bytes));
  for (const auto& l : extra_lines) fmt::print("  {}\n", l);
  if (const YieldCounts y = yield_counts(); y.points != 0)
    fmt::print("  protocol points {}: yielded at {}, slept at {}\n", y.points, y.yields, y.sleeps);
  fmt::print("  errors      heap reports {}, driver failures {}\n", s.errors, failures());
  fmt::print(
      "RESULT {} {} seed={} seconds={:.1f} cycles={} ops_per_s={:.0f} pause_p99={} "
      "pause_max_us={:.1f} "
      "collect_p99_us={:.1f} failures={}\n",
      driver_, ok ? "PASS" : "FAIL", cfg_.seed, elapsed, s.cycles, ops / std::max(elapsed, 1e-9),
      shell_quote(histogram_percentile(s, 0.99)), static_cast<double>(s.pause_max_ns) / 1e3,
      static_cast<double>(exact_percentile(coll, 0.99)) / 1e3, failures());
  if (!ok) fmt::print("repro: {}\n", repro());
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace spanheap::stress
