// The stress harness: one command line, seeded per-thread randomness, a start gun, a deadline, a
// progress line every second, the final summary, and the failure path that prints the exact repro
// command. Every driver in stress/ is built on it; docs/stress.md describes the flags and output.
#pragma once

#include <spanheap/oracle/rng.hpp>
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace spanheap::stress {

// ---------------------------------------------------------------------------------------------
// Command line. Every driver takes the same flags; `--smoke` swaps in the driver's smoke defaults
// and any flag given explicitly wins over either set (snmalloc's perf tests do the same).
struct Config {
  unsigned threads = 4;    // mutator threads (driver-specific meaning, see docs/stress.md)
  double seconds = 10;     // wall-clock budget of the timed loop
  std::uint64_t seed = 0;  // fixes every thread's choices (the interleaving stays the OS's)
  bool smoke = false;
  FlushPolicy flush = FlushPolicy::lazy;
  unsigned sweepers = 2;           // Options::sweepers (background sweeper threads)
  unsigned procs = 0;              // Options::procs; 0 = the driver's choice
  unsigned verify_every_ms = 100;  // period of the verify() thread; 0 = no verify thread
  unsigned stw_every_us = 200;     // mean gap between random-interval collect() calls
  unsigned collectors = 2;         // threads forcing cycles (the first one as fast as it can)
  unsigned sweep_threads = 2;      // threads calling sweep_one() in a loop (concurrent_sweep)
  CheckLevel checks = CheckLevel::expensive;
  std::size_t max_large = std::size_t{1} << 20;  // largest object size drawn
  unsigned yield_at_points = 0;  // per mille: pauses at protocol points (yield_points.hpp); 0 = off
};

struct Defaults {
  Config normal;
  Config smoke;
};

// ---------------------------------------------------------------------------------------------
// Randomness: the oracle library's seeded RNG, one stream per (seed, thread id).
using Rng = oracle::Rng;

// ---------------------------------------------------------------------------------------------
// Counters each worker batches locally and publishes with relaxed adds (keeps the shared cache
// lines out of the hot loop).
struct Tally {
  std::uint64_t allocs = 0;
  std::uint64_t frees = 0;
  std::uint64_t bytes = 0;      // bytes allocated
  std::uint64_t transfers = 0;  // objects handed to another thread
  std::uint64_t checks = 0;     // content verifications
  std::uint64_t sweeps = 0;     // successful sweep_one() calls
  std::uint64_t zeroed = 0;     // allocate_zeroed results checked for zeroes
};

struct SharedTally {
  std::atomic<std::uint64_t> allocs{0}, frees{0}, bytes{0}, transfers{0}, checks{0}, sweeps{0},
      zeroed{0};
  void add(Tally& t);  // adds and zeroes `t`
};

// Exact durations of the driver's own collect() calls (nanoseconds), merged at thread exit.
class PauseLog {
 public:
  void add(const std::vector<std::uint64_t>& ns);
  std::vector<std::uint64_t> sorted() const;
  std::atomic<std::uint64_t> count{0};  // collect() calls completed so far (for progress)

 private:
  mutable std::mutex mu_;
  std::vector<std::uint64_t> ns_;
};

// Threads spin (yielding) on the gun so they all start inside the same instant.
class StartGun {
 public:
  void wait() const;
  void fire() { fired_.store(true, std::memory_order_release); }

 private:
  std::atomic<bool> fired_{false};
};

// ---------------------------------------------------------------------------------------------
// One run of one driver.
class Run {
 public:
  // Parses argv; prints usage and exits on --help (0) or a bad flag (2).
  Run(std::string_view driver, int argc, char** argv, const Defaults& defaults);

  const Config& config() const { return cfg_; }
  // Options for the heap under test: the run's flags, the recording error handler, expensive
  // checks and, with an even seed, the allocation hooks (clobber, and poison under ASan); an odd
  // seed runs without them, so that allocations take the fast paths.
  Options heap_options(unsigned default_procs);
  // Arms --yield-at-points on a heap built from heap_options(): call it right after construction.
  void arm(Heap& heap) const;
  testing::RecordingHandler& recorder() { return recorder_; }

  // The timed loop's stop condition: deadline passed or some failure recorded.
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  void request_stop() { stop_.store(true, std::memory_order_relaxed); }
  // Brackets one collect() (or split cycle) of collector number `collector`, for the watchdog: a
  // cycle that never returns fails the run even while mutators keep making progress.
  void collect_begins(unsigned collector);
  void collect_ends(unsigned collector);
  // Sleeps up to `d`, waking early when the run stops.
  void nap(std::chrono::microseconds d) const;

  // Records a failure (thread-safe): the first one prints FAIL and the repro line at once, every
  // one is counted, the run stops and finish() returns non-zero.
  void fail(std::string message);
  bool failed() const { return failures_.load() != 0; }
  std::uint64_t failures() const { return failures_.load(); }

  // The exact command that reruns this configuration.
  std::string repro() const;

  // Checks the error recorder and turns any report into a failure. Called by monitor() and
  // finish().
  void check_reports();

  // Runs on the main thread: starts the clock, fires the gun, then prints one progress line per
  // second until the deadline or a failure, calling `periodic` (may call fail()) about every 100
  // ms.
  void monitor(StartGun& gun, Heap& heap, const SharedTally& tally, const PauseLog& pauses,
               const std::function<void()>& periodic = {});
  // The same, for drivers whose heaps come and go: `stats` supplies the progress line's numbers.
  void monitor(StartGun& gun, const std::function<Stats()>& stats, const SharedTally& tally,
               const PauseLog& pauses, const std::function<void()>& periodic = {});

  // End of run, world quiet (workers joined, their objects freed): sweeps everything, checks the
  // heap's accounting against the driver's own counts (`outstanding` objects still allocated by
  // the driver, normally 0), runs verify(), prints the summary and returns the exit code.
  int finish(Heap& heap, const SharedTally& tally, const PauseLog& pauses,
             std::uint64_t outstanding, const std::vector<std::string>& extra_lines = {});
  // The summary and RESULT line of finish() alone, from `s` (the numbers of the run's heaps, summed
  // by a driver that destroyed them itself); returns the exit code.
  int summarize(const Stats& s, const SharedTally& tally, const PauseLog& pauses,
                const std::vector<std::string>& extra_lines = {});

  std::chrono::steady_clock::time_point started() const { return start_; }
  double elapsed_seconds() const;

 private:
  std::string driver_;
  std::string argv0_;
  Config cfg_;
  std::vector<std::string> explicit_flags_;
  testing::RecordingHandler recorder_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> failures_{0};
  std::mutex fail_mu_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point ended_;  // when the timed loop stopped (monitor)
};

// Names of the build this binary came from (CMake passes them in).
std::string_view build_preset();
std::string_view sanitizer_name();
// True in TSan / ASan builds (drivers scale their defaults down).
bool under_sanitizer();

}  // namespace spanheap::stress
