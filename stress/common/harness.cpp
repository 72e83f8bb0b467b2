// The stress harness (see harness.hpp and docs/stress.md): the build it runs in, the counters and
// the start gun, the heap's options, failures, and the timed loop's monitor. The command line is
// command_line.cpp, the watchdog watchdog.cpp, the end of the run summary.cpp.
#include "harness.hpp"

#include "format.hpp"
#include "harness_internal.hpp"
#include "yield_points.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <string>

#ifndef SPANHEAP_STRESS_PRESET
#define SPANHEAP_STRESS_PRESET ""
#endif
#ifndef SPANHEAP_STRESS_SANITIZER
#define SPANHEAP_STRESS_SANITIZER "none"
#endif

namespace spanheap::stress {
using namespace detail;

std::string_view build_preset() { return SPANHEAP_STRESS_PRESET; }
std::string_view sanitizer_name() { return SPANHEAP_STRESS_SANITIZER; }

bool under_sanitizer() {
#if defined(SPANHEAP_STRESS_TSAN) || defined(SPANHEAP_STRESS_ASAN)
  return true;
#else
  return sanitizer_name() != "none";
#endif
}

// ---------------------------------------------------------------------------------------------
// Counters, pauses, start gun.

void SharedTally::add(Tally& t) {
  allocs.fetch_add(t.allocs, std::memory_order_relaxed);
  frees.fetch_add(t.frees, std::memory_order_relaxed);
  bytes.fetch_add(t.bytes, std::memory_order_relaxed);
  transfers.fetch_add(t.transfers, std::memory_order_relaxed);
  checks.fetch_add(t.checks, std::memory_order_relaxed);
  sweeps.fetch_add(t.sweeps, std::memory_order_relaxed);
  zeroed.fetch_add(t.zeroed, std::memory_order_relaxed);
  t = Tally{};
}

void PauseLog::add(const std::vector<std::uint64_t>& ns) {
  std::lock_guard lock(mu_);
  ns_.insert(ns_.end(), ns.begin(), ns.end());
}

std::vector<std::uint64_t> PauseLog::sorted() const {
  std::lock_guard lock(mu_);
  auto v = ns_;
  std::sort(v.begin(), v.end());
  return v;
}

void StartGun::wait() const {
  while (!fired_.load(std::memory_order_acquire)) std::this_thread::yield();
}

Options Run::heap_options(unsigned default_procs) {
  if (cfg_.procs == 0) cfg_.procs = default_procs;
  Options o;
  o.procs = cfg_.procs;
  o.sweepers = cfg_.sweepers;
  o.flush = cfg_.flush;
  o.checks = cfg_.checks;
  // The allocation hooks (freed slots clobbered, and poisoned under ASan, checked at allocation)
  // keep every allocation off the fast paths and the threads from binding by key
  // (HeapState::allocation_hooks): runs with an odd seed go without them, so that the fast paths
  // race the protocol too; even seeds keep the write-after-free check. The seed is in the repro
  // line, so a failure replays with the same choice.
  const bool hooks = cfg_.seed % 2 == 0;
  o.debug.clobber_freed = hooks;
#if defined(SPANHEAP_STRESS_ASAN)
  o.debug.poison_freed = hooks;
#endif
  // SPANHEAP_* variables may still adjust the rest (tracing, for one); they are echoed in repro().
  o = Options::from_env(o);
  o.error_handler = recorder_.handler();
  // Ready the repro line for the sanitizer callbacks (printed if a sanitizer ends the process).
  std::string r = "repro: " + repro() + "\n";
  std::snprintf(g_repro, sizeof g_repro, "%s", r.c_str());
#if defined(SPANHEAP_STRESS_TSAN) || defined(SPANHEAP_STRESS_ASAN)
  __sanitizer_set_death_callback(print_sanitizer_repro);
#endif
  return o;
}

void Run::arm(Heap& heap) const { arm_yield_points(heap, cfg_.seed, cfg_.yield_at_points); }

void Run::nap(std::chrono::microseconds d) const {
  auto until = std::chrono::steady_clock::now() + d;
  while (!stopping()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= until) return;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(20)));
  }
}

void Run::fail(std::string message) {
  std::uint64_t n = failures_.fetch_add(1) + 1;
  request_stop();
  std::lock_guard lock(fail_mu_);
  if (n <= 10) {
    fmt::print(stderr, "FAIL [{} +{:.3f}s]: {}\n", driver_, elapsed_seconds(), message);
  }
  if (n == 1) fmt::print(stderr, "repro: {}\n", repro());
  std::fflush(stderr);
}

void Run::check_reports() {
  if (recorder_.count() == 0) return;
  for (const auto& r : recorder_.take()) {
    fail(fmt::format("unexpected heap error report ({}): {}", to_string(r.kind), r.message));
  }
}

double Run::elapsed_seconds() const {
  if (start_ == std::chrono::steady_clock::time_point{}) return 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Run::monitor(StartGun& gun, Heap& heap, const SharedTally& tally, const PauseLog& pauses,
                  const std::function<void()>& periodic) {
  monitor(
      gun, [&heap] { return heap.stats(); }, tally, pauses, periodic);
}

void Run::monitor(StartGun& gun, const std::function<Stats()>& stats, const SharedTally& tally,
                  const PauseLog& pauses, const std::function<void()>& periodic) {
  using namespace std::chrono;
  // Started before the gun: drivers that count the process's threads see it from their start.
  static std::once_flag watchdog_started;
  std::call_once(watchdog_started, [] { std::thread(watchdog_main).detach(); });
  start_ = steady_clock::now();
  gun.fire();  // publishes start_ to every worker (fail() reads it)
  fmt::print(
      "{}: seed {} threads {} seconds {} flush {} sweepers {} procs {} preset {} sanitizer {}\n",
      driver_, cfg_.seed, cfg_.threads, cfg_.seconds, to_flag(cfg_.flush), cfg_.sweepers,
      cfg_.procs, build_preset().empty() ? "?" : build_preset(), sanitizer_name());
  std::fflush(stdout);
  auto deadline = start_ + duration_cast<steady_clock::duration>(duration<double>(cfg_.seconds));
  auto next_line = start_ + seconds(1);
  std::uint64_t last_cycles = 0, last_ops = 0;
  // A stopped world that never restarts shows up as no cycle and no operation for this long.
  const auto stall_limit = seconds(under_sanitizer() ? 60 : 20);  // no driver progress at all
  std::snprintf(g_driver_name, sizeof g_driver_name, "%s", driver_.c_str());
  g_watch_limit_ns.store(duration_cast<nanoseconds>(stall_limit).count());
  g_collect_limit_ns.store(
      duration_cast<nanoseconds>(seconds(under_sanitizer() ? 60 : 30)).count());
  g_watch_mark_ns.store(now_ns());
  g_watch_phase.store(1);
  std::uint64_t driver_mark = 0;
  while (!stopping()) {
    std::this_thread::sleep_for(milliseconds(100));
    auto now = steady_clock::now();
    if (now >= deadline) request_stop();
    check_reports();
    if (periodic) periodic();
    std::uint64_t ops = tally.allocs.load(std::memory_order_relaxed) +
                        tally.frees.load(std::memory_order_relaxed) +
                        tally.sweeps.load(std::memory_order_relaxed);
    // Progress by the driver's own counters (no heap call: a stuck world may block those).
    std::uint64_t dmark = ops + pauses.count.load(std::memory_order_relaxed);
    if (dmark != driver_mark) {
      driver_mark = dmark;
      g_watch_mark_ns.store(now_ns());
    }
    if (now >= next_line || stopping()) {
      Stats s = stats();
      double dt = duration<double>(now - (next_line - seconds(1))).count();
      fmt::print(
          "[{} {:6.1f}s] cycles {} (+{:.0f}/s) ops {} ({}/s) collect() {} live {} / {} obj "
          "pause max {} flushes L/B/E {}/{}/{} swept bg/prop/dem/flush/term {}/{}/{}/{}/{} errors "
          "{}\n",
          driver_, duration<double>(now - start_).count(), s.cycles,
          static_cast<double>(s.cycles - last_cycles) / dt, human(static_cast<double>(ops)),
          human(static_cast<double>(ops - last_ops) / dt), pauses.count.load(), mib(s.live_bytes),
          s.live_objects, micros(s.pause_max_ns), s.flushes_lazy, s.flushes_barrier,
          s.flushes_eager, s.swept_background, s.swept_proportional, s.swept_on_demand,
          s.swept_by_flush, s.swept_termination, s.errors + failures());
      std::fflush(stdout);
      last_cycles = s.cycles;
      last_ops = ops;
      next_line = now + seconds(1);
    }
  }
  ended_ = steady_clock::now();
  // Wind-down (joins, final cycle and sweep, verify, the heap's destructor) gets its own budget.
  g_watch_limit_ns.store(duration_cast<nanoseconds>(seconds(under_sanitizer() ? 120 : 45)).count());
  g_watch_mark_ns.store(now_ns());
  g_watch_phase.store(2);
}

}  // namespace spanheap::stress
