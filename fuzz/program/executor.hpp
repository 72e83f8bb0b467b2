// The executor: runs a Program (program.hpp) against a fresh deterministic heap and checks it
// against the shadow model after every step (the run itself is execution.hpp; the model is the
// oracle library, oracle/). docs/fuzzing.md lists every check.
//
// The heap is built with sweepers = 0, gc_percent = 0 (unless the program turns pacing on),
// checks = debug, debug.clobber_freed for arenas of 1 and 2 MiB (the others reach the
// allocation fast paths, which the hooks turn off), a small arena and, when the program asks,
// testing::FakeOsMemory with failure injection; errors go to a testing::RecordingHandler, so
// every report the model did not predict is a failure.
//
// The shadow model keeps every live object (address, size, alignment, usable size, content
// pattern seed, allocating P) and every freed object until the heap reclaims it. It checks:
//  - contents of live objects are intact (head and tail words after every step; every sampled
//    byte at full checks), usable_size >= size and equal to the class size, owns(), alignment,
//    find_object() kind/base/size, and that no two live objects overlap;
//  - a freed object is never handed out again, nor reported reclaimed, before a cycle has passed;
//    once "sweep done" holds, every object freed before the cycle has been reclaimed;
//  - stats(): live_objects = live + pending, pending_frees, allocations and frees counters;
//  - per-P lazy flush (explicit P targets): which Ps are stale, flush_idle's answer, the
//    flushes_lazy / flushes_barrier counters, and flush_gen in testing::snapshot();
//  - span states in testing::snapshot(): sweepgen deltas, cached spans only in caches, large spans
//    never cached, alloc counts summing to live_objects;
//  - heap.verify() clean after every cycle, every bad call and at the end;
//  - every bad free / bad allocation yields exactly one report of the predicted ErrorKind and
//    changes nothing else; out_of_memory only when a limit or injected OS failure explains it;
//  - at the end: free everything, run cycles until swept, and the heap must hold nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "check_ids.hpp"
#include "program.hpp"

namespace spanheap::fuzz {

struct RunOptions {
  bool trace = false;  // record one line per executed step in Outcome::trace
};

struct Outcome {
  bool ok = true;
  std::size_t step = 0;  // failing operation index; ops.size() means the final checks
  std::size_t ops_run = 0;
  std::string failure;            // what the oracle saw, with the expected and actual values
  CheckId check = CheckId::none;  // which check failed
  // A stable refinement of `check`, no addresses or counts: the invariant id of heap_verify's
  // first violation, the ErrorKind of report_unexpected; empty for the other checks.
  std::string check_detail;
  std::string trace;  // executed steps with the objects they resolved to (when traced)
  // The failure, the program up to the failing step and the trace, for a human.
  std::string report(const Program& program) const;
  // "<check>" or "<check> (<detail>)": what stays the same when the same bug fails again with
  // other objects at other addresses. Empty when ok.
  std::string crash_state() const;
};

// Runs `program` on a fresh heap. Never aborts on an oracle failure; returns it.
Outcome run(const Program& program, const RunOptions& options = {});

// Called by fuzz_one() when the oracle fails. The default prints the failure, the program so far
// as an executed trace, saves the input and prints `ci/repro <file>`, then aborts so that
// libFuzzer and AFL++ see a crash.
using FailureHook = void (*)(const Program& program, const Outcome& outcome,
                             std::span<const std::uint8_t> input);
void set_failure_hook(FailureHook hook);
void default_failure_hook(const Program& program, const Outcome& outcome,
                          std::span<const std::uint8_t> input);

// The replay driver tells the hook which file is being replayed (so the repro line names it).
void set_current_input_path(const std::string& path);

// The body of every LLVMFuzzerTestOneInput: decode, run, fail loudly.
int fuzz_one(Target target, const std::uint8_t* data, std::size_t size);

// Lower-case hex SHA-1 (libFuzzer names its artifacts crash-<sha1>; we name ours the same way).
std::string sha1_hex(std::span<const std::uint8_t> bytes);

}  // namespace spanheap::fuzz
