// The stress harness (see harness.hpp and docs/stress.md).
#include "harness.hpp"

#include "format.hpp"
#include "yield_points.hpp"

#include <fmt/format.h>
#include <spanheap/version.hpp>

#include <sys/personality.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPANHEAP_STRESS_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define SPANHEAP_STRESS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SPANHEAP_STRESS_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SPANHEAP_STRESS_ASAN 1
#endif

#if defined(SPANHEAP_STRESS_TSAN) || defined(SPANHEAP_STRESS_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef SPANHEAP_STRESS_PRESET
#define SPANHEAP_STRESS_PRESET ""
#endif
#ifndef SPANHEAP_STRESS_SANITIZER
#define SPANHEAP_STRESS_SANITIZER "none"
#endif

namespace spanheap::stress {

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

// ---------------------------------------------------------------------------------------------
// Sanitizer hooks: a sanitizer report ends the process inside the runtime, so the repro line is
// prepared in advance and printed from the runtime's callbacks.
namespace {

char g_repro[4096];
std::atomic<bool> g_repro_printed{false};

[[maybe_unused]] void print_sanitizer_repro() {
  if (g_repro[0] == 0 || g_repro_printed.exchange(true)) return;
  std::fputs("\nFAIL: sanitizer report (see above)\n", stderr);
  std::fputs(g_repro, stderr);
  std::fflush(stderr);
}

// The watchdog: a detached thread that touches no heap and no driver object, only these words.
// While the timed loop runs, `g_watch_mark_ns` is the last time the monitor saw the driver's own
// counters move; afterwards it is when wind-down began (the joins, the final cycle and sweep, the
// heap's destructor). Past `g_watch_limit_ns` the world is taken to be stuck: FAIL, the repro line,
// abort (a core for the debugger). It must not depend on heap.stats(): a stuck world may block it.
std::atomic<std::int64_t> g_watch_mark_ns{0};
std::atomic<std::int64_t> g_watch_limit_ns{0};
std::atomic<int> g_watch_phase{0};  // 0 off, 1 timed loop, 2 winding down
char g_driver_name[64];
// When each collector thread entered its current collect() (0 = not in one). A cycle that does
// not return while mutators keep going (a ragged barrier waiting for a P that never flushes) is
// a hang the operation counters alone would miss.
constexpr int max_watched_collectors = 32;
std::atomic<std::int64_t> g_collect_since_ns[max_watched_collectors];
std::atomic<std::int64_t> g_collect_limit_ns{0};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void watchdog_main() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    int phase = g_watch_phase.load();
    if (phase == 0) continue;
    const std::int64_t now = now_ns();
    std::int64_t idle = now - g_watch_mark_ns.load();
    const char* what =
        phase == 1 ? "no cycle and no operation" : "still not wound down after the run";
    if (idle <= g_watch_limit_ns.load()) {
      idle = 0;
      for (auto& since : g_collect_since_ns) {
        std::int64_t t = since.load();
        if (t != 0 && now - t > idle) idle = now - t;
      }
      if (idle <= g_collect_limit_ns.load()) continue;
      what = "a collect() call (or a heap's destruction) has not returned";
    }
    std::fprintf(stderr,
                 "\nFAIL [%s]: %s for %.0f s: the world looks stuck (a deadlock in a stop, a "
                 "cycle or a sweep?); aborting for a core\n%s",
                 g_driver_name, what, static_cast<double>(idle) / 1e9, g_repro);
    // Every thread's stack, when gdb is at hand: the hang is usually plain to see in them.
    char cmd[256];
    std::snprintf(cmd, sizeof cmd,
                  "command -v gdb >/dev/null 2>&1 && timeout 120 gdb -p %d -batch -nx -ex "
                  "'thread apply all bt 40' 1>&2 2>/dev/null",
                  static_cast<int>(getpid()));
    std::fflush(stderr);
    std::fflush(stdout);
    if (std::system(cmd) != 0) std::fputs("(no gdb: no stacks)\n", stderr);
    std::fputs(g_repro, stderr);
    std::abort();
  }
}

}  // namespace
}  // namespace spanheap::stress

#if defined(SPANHEAP_STRESS_TSAN)
// Called by the TSan runtime for every report it prints (a weak hook in compiler-rt).
extern "C" void __tsan_on_report(const void*) { spanheap::stress::print_sanitizer_repro(); }
#endif

namespace spanheap::stress {
namespace {

// ---------------------------------------------------------------------------------------------
// Command line.
const char* usage_text =
    "usage: {0} [flags]\n"
    "  --threads N          mutator threads\n"
    "  --seconds S          time budget of the timed loop (fractions allowed)\n"
    "  --seed N             seed of every thread's choices (default: random, printed)\n"
    "  --smoke              small, fast defaults (explicit flags still win)\n"
    "  --flush lazy|eager   cache flush policy\n"
    "  --sweepers N         background sweeper threads (Options::sweepers)\n"
    "  --procs N            number of Ps (Options::procs; 0 = driver default)\n"
    "  --verify-every-ms N  period of the verify() thread (0 = off)\n"
    "  --stw-every-us N     mean gap between random-interval collect() calls\n"
    "  --collectors N       threads forcing cycles (the first as fast as it can)\n"
    "  --sweep-threads N    threads calling sweep_one() in a loop\n"
    "  --checks release|debug|expensive   library check tier (default expensive)\n"
    "  --max-large BYTES    largest object drawn\n"
    "  --yield-at-points N  pause at the heap's protocol points (N per mille sleep, 3N yield)\n"
    "  --help\n";

[[noreturn]] void usage(std::string_view driver, int code, std::string_view error = {}) {
  if (!error.empty()) fmt::print(stderr, "{}: {}\n", driver, error);
  fmt::print(code == 0 ? stdout : stderr, fmt::runtime(usage_text), driver);
  std::exit(code);
}

template <typename T>
T parse_uint(std::string_view driver, std::string_view flag, std::string_view v) {
  T out{};
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || ptr != v.data() + v.size()) {
    usage(driver, 2, fmt::format("bad value '{}' for {}", v, flag));
  }
  return out;
}

const char* to_flag(FlushPolicy f) { return f == FlushPolicy::lazy ? "lazy" : "eager"; }

const char* to_flag(CheckLevel c) {
  switch (c) {
    case CheckLevel::release:
      return "release";
    case CheckLevel::debug:
      return "debug";
    case CheckLevel::expensive:
      return "expensive";
  }
  return "?";
}

std::string shell_quote(std::string_view s) {
  bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("/._-=:,+", c) != nullptr;
  });
  if (plain) return std::string(s);
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

Run::Run(std::string_view driver, int argc, char** argv, const Defaults& defaults)
    : driver_(driver), argv0_(argc > 0 ? argv[0] : std::string(driver)) {
  if (print_version_if_asked(argc, argv)) std::exit(0);
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--smoke") smoke = true;
    if (a == "--help" || a == "-h") usage(driver_, 0);
  }
  cfg_ = smoke ? defaults.smoke : defaults.normal;
  cfg_.smoke = smoke;
  bool seed_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--smoke") continue;
    if (a.substr(0, 2) != "--") usage(driver_, 2, fmt::format("unexpected argument '{}'", a));
    std::string_view flag = a, value;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else {
      static constexpr std::string_view known[] = {
          "--threads", "--seconds",         "--seed",           "--flush",      "--sweepers",
          "--procs",   "--verify-every-ms", "--stw-every-us",   "--collectors", "--sweep-threads",
          "--checks",  "--max-large",       "--yield-at-points"};
      if (std::find(std::begin(known), std::end(known), flag) == std::end(known)) {
        usage(driver_, 2, fmt::format("unknown flag {}", flag));
      }
      if (i + 1 >= argc) usage(driver_, 2, fmt::format("{} needs a value", flag));
      value = argv[++i];
    }
    if (flag == "--threads") {
      cfg_.threads = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--seconds") {
      char* end = nullptr;
      std::string v(value);
      cfg_.seconds = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != 0 || !(cfg_.seconds >= 0)) usage(driver_, 2, "bad --seconds");
    } else if (flag == "--seed") {
      cfg_.seed = parse_uint<std::uint64_t>(driver_, flag, value);
      seed_given = true;
    } else if (flag == "--flush") {
      if (value == "lazy")
        cfg_.flush = FlushPolicy::lazy;
      else if (value == "eager")
        cfg_.flush = FlushPolicy::eager;
      else
        usage(driver_, 2, "--flush takes lazy or eager");
    } else if (flag == "--sweepers") {
      cfg_.sweepers = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--procs") {
      cfg_.procs = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--verify-every-ms") {
      cfg_.verify_every_ms = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--stw-every-us") {
      cfg_.stw_every_us = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--collectors") {
      cfg_.collectors = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--sweep-threads") {
      cfg_.sweep_threads = parse_uint<unsigned>(driver_, flag, value);
    } else if (flag == "--checks") {
      if (value == "release")
        cfg_.checks = CheckLevel::release;
      else if (value == "debug")
        cfg_.checks = CheckLevel::debug;
      else if (value == "expensive")
        cfg_.checks = CheckLevel::expensive;
      else
        usage(driver_, 2, "--checks takes release, debug or expensive");
    } else if (flag == "--max-large") {
      cfg_.max_large = parse_uint<std::size_t>(driver_, flag, value);
    } else if (flag == "--yield-at-points") {
      cfg_.yield_at_points = parse_uint<unsigned>(driver_, flag, value);
      if (cfg_.yield_at_points > 250)
        usage(driver_, 2, "--yield-at-points takes 0 to 250 (per mille)");
    } else {
      usage(driver_, 2, fmt::format("unknown flag {}", flag));
    }
    explicit_flags_.emplace_back(flag);
  }
  if (!seed_given) {
    std::random_device rd;
    cfg_.seed =
        (std::uint64_t{rd()} << 32 | rd()) ^
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    cfg_.seed &= (std::uint64_t{1} << 53) - 1;  // keeps seeds short enough to read out loud
  }
  if (cfg_.threads == 0) usage(driver_, 2, "--threads must be at least 1");
}

Options Run::heap_options(unsigned default_procs) {
  if (cfg_.procs == 0) cfg_.procs = default_procs;
  Options o;
  o.procs = cfg_.procs;
  o.sweepers = cfg_.sweepers;
  o.flush = cfg_.flush;
  o.checks = cfg_.checks;
  o.debug.clobber_freed = true;
#if defined(SPANHEAP_STRESS_ASAN)
  o.debug.poison_freed = true;
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

std::string Run::repro() const {
  std::string cmd;
  std::string_view preset = build_preset();
  if (!preset.empty()) {
    cmd += fmt::format("cmake --preset {0} && cmake --build --preset {0} --target {1} && ", preset,
                       driver_);
  }
  for (const char* var : {"TSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS"}) {
    if (const char* v = std::getenv(var)) cmd += fmt::format("{}={} ", var, shell_quote(v));
  }
  // The heap's own settings (Options::from_env), not every SPANHEAP_* a script may export.
  for (const char* var : {"SPANHEAP_PROCS", "SPANHEAP_SWEEPERS", "SPANHEAP_FLUSH", "SPANHEAP_REUSE",
                          "SPANHEAP_BINDING", "SPANHEAP_GC_PERCENT", "SPANHEAP_MEMORY_LIMIT",
                          "SPANHEAP_CHECKS", "SPANHEAP_POISON", "SPANHEAP_CLOBBER",
                          "SPANHEAP_COLLECT_EVERY", "SPANHEAP_VERIFY", "SPANHEAP_TRACE"}) {
    if (const char* v = std::getenv(var)) cmd += fmt::format("{}={} ", var, shell_quote(v));
  }
  int pers = personality(0xffffffff);
  if (pers != -1 && (pers & ADDR_NO_RANDOMIZE) != 0) cmd += "setarch \"$(uname -m)\" -R ";
  cmd += preset.empty() ? shell_quote(argv0_) : fmt::format("build/{}/stress/{}", preset, driver_);
  cmd += fmt::format(
      " --seed {} --threads {} --seconds {} --flush {} --sweepers {} --procs {}"
      " --verify-every-ms {} --stw-every-us {} --collectors {} --sweep-threads {} --checks {}"
      " --max-large {}",
      cfg_.seed, cfg_.threads, cfg_.seconds, to_flag(cfg_.flush), cfg_.sweepers, cfg_.procs,
      cfg_.verify_every_ms, cfg_.stw_every_us, cfg_.collectors, cfg_.sweep_threads,
      to_flag(cfg_.checks), cfg_.max_large);
  if (cfg_.yield_at_points != 0) cmd += fmt::format(" --yield-at-points {}", cfg_.yield_at_points);
  return cmd;
}

void Run::collect_begins(unsigned collector) {
  g_collect_since_ns[collector % max_watched_collectors].store(now_ns());
}

void Run::collect_ends(unsigned collector) {
  g_collect_since_ns[collector % max_watched_collectors].store(0);
}

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
      "  ops         {} allocs, {} frees, {} sweep_one, {} transfers, {} content checks: {} ops/s, "
      "{} alloc/s\n",
      allocs, frees, tally.sweeps.load(), tally.transfers.load(), tally.checks.load(),
      human(ops / std::max(elapsed, 1e-9)),
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
