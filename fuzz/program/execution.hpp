// execution: one run of a Program against a fresh deterministic heap, checked against the shadow
// model after every step (executor.hpp lists what is checked). The model itself — live and freed
// objects, the content pattern, the snapshot rules — is the shared oracle library (oracle/,
// docs/design.md "The oracle library"); this class holds what is the fuzzers' own: decoding
// results into heap calls, the per-P staleness the program's steps imply, and when to run the
// expensive checks. Its operations are split by family: alloc_ops.cpp (allocate, free, object
// checks), bad_call_ops.cpp (bad frees and allocations), world_ops.cpp (cycles, barriers, Ps,
// sweeping, OS faults), query_ops.cpp (size classes and pacing, no heap), step_checks.cpp (after
// every step and at boundaries) and execution.cpp (the run itself).
#pragma once

#include <fmt/format.h>
#include <spanheap/oracle/shadow.hpp>
#include <spanheap/testing.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "executor.hpp"
#include "program.hpp"

namespace spanheap::fuzz {

using oracle::FreedObject;
using oracle::LiveObject;

inline std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
const char* kind_name(PointerKind k);
// The size-class table by span class.
const std::map<unsigned, testing::SizeClassInfo>& class_table();

class ProgramExecution {
 public:
  ProgramExecution(const Program& program, const RunOptions& options);
  Outcome run();

 private:
  // ---- failure plumbing (execution.cpp) ----
  template <class... Args>
  void fail(CheckId check, fmt::format_string<Args...> f, Args&&... args) {
    if (!out_.ok) return;
    out_.ok = false;
    out_.step = step_;
    out_.check = check;
    out_.failure = fmt::format(f, std::forward<Args>(args)...);
  }
  // Adds the stable detail to the failure fail(check, ...) just recorded (not to an earlier one:
  // the first failure is the one reported).
  void refine(CheckId check, std::string_view detail) {
    if (out_.check == check && out_.check_detail.empty()) out_.check_detail = detail;
  }
  template <class... Args>
  void note(fmt::format_string<Args...> f, Args&&... args) {
    if (opts_.trace) fmt::format_to(std::back_inserter(line_), f, std::forward<Args>(args)...);
  }
  void trace_step();
  void make_heap();
  Heap& heap() { return *heap_; }
  const Stats& stats() const { return stats_slots_[stats_now_]; }
  // Heap::stats() straight into the current slot (a prvalue initializes it; no temporary).
  void refresh_stats() { ::new (&stats_slots_[stats_now_]) Stats(heap().stats()); }
  // Keeps the current stats as the step's "before" and reads the new ones; returns the before.
  const Stats& advance_stats() {
    stats_now_ ^= 1;
    refresh_stats();
    return stats_slots_[stats_now_ ^ 1];
  }
  void* do_alloc(unsigned proc, std::size_t size, std::size_t align);
  void do_free(unsigned proc, void* p);
  bool expect_no_reports(const char* what);
  bool expect_one_report(ErrorKind kind, const void* ptr, const char* what);
  void verify(const char* when) { verified(heap().verify(), when); }
  void verified(const VerifyResult& r, const char* when);
  void verify_if_dirty(const char* when);
  std::string last_clean_verify() const;
  void finish();

  // ---- objects (alloc_ops.cpp) ----
  void declare_written(const LiveObject& o);
  bool accessible(const LiveObject& o, std::size_t from, std::size_t len);
  bool check_contents(const LiveObject& o, bool full);
  bool check_found(const LiveObject& o);
  bool check_object(const LiveObject& o, bool full_contents);
  LiveObject* pick_live(unsigned pick) {
    auto& live = shadow_.live();
    return live.empty() ? nullptr : &live[pick % live.size()];
  }
  bool still_pending(const FreedObject& f);
  void scan_pending();
  bool admit(void* p, std::size_t usable);
  void exec(const Alloc& op);
  void exec(const Free& op);
  void exec(const Refill& op);
  void exec(const Check& op);
  void exec(const Corrupt& op);

  // ---- Ps, cycles, sweeping, the OS (world_ops.cpp) ----
  void exec(const Collect&);
  void exec(const BeginCycle&);
  void exec(const RaggedBarrier&);
  void exec(const FlushIdle& op);
  void exec(const FlushAll&);
  void exec(const Wake& op);
  void exec(const SweepOne&);
  void exec(const ProportionalSweep& op);
  void exec(const FailOs& op);
  void exec(const Verify&) { boundary_check("at a Verify operation"); }

  // ---- bad calls (bad_call_ops.cpp) ----
  struct BadCall {
    void* ptr = nullptr;
    ErrorKind want = ErrorKind::invalid_free;
    // Where the model cannot see the heap's choice (pick_reclaimed, pick_freed_interior), a
    // second kind that is right too.
    std::optional<ErrorKind> or_kind = std::nullopt;
    bool usable_call = false;  // usable_size(ptr), not free(ptr)
  };
  void exec(const BadAlloc& op);
  void exec(const BadFree& op);
  std::optional<BadCall> pick_bad_call(const BadFree& op);
  std::optional<BadCall> pick_reclaimed(const BadFree& op);
  std::optional<BadCall> pick_freed_interior(const BadFree& op);
  std::optional<BadCall> pick_other_heap(const BadFree& op);
  std::optional<BadCall> pick_span_tail(const BadFree& op);
  std::nullopt_t skip(const char* why) {
    note("{}", why);
    return std::nullopt;
  }

  // ---- no heap (query_ops.cpp) ----
  void exec(const SizeQuery& op) { size_query(op); }
  void exec(const PacingQuery& op) { pacing_query(op); }
  void size_query(const SizeQuery& op);
  void pacing_query(const PacingQuery& q);

  // ---- after every step and at boundaries (step_checks.cpp) ----
  void acquiring(unsigned proc);
  void cycle_done() { checked_nothing_to_sweep_ = false; }
  bool unchanged(const Stats& before, const char* what);
  bool structure_changed(const Stats& before);
  void after_step(const Op& op);
  bool check_flush_counters(const Op& op, const Stats& before);
  bool check_counts();
  bool check_reclaim_counters();
  void boundary_check(const char* when);
  void check_snapshot(const testing::HeapSnapshot& snap);

  const Program& prog_;
  RunOptions opts_;
  bool explicit_procs_;
  Outcome out_;
  std::size_t step_ = 0;
  std::string line_;

  testing::RecordingHandler rec_;
  testing::RecordingHandler other_rec_;
  // Reports delivered to rec_ since the last take_reports(): expect_no_reports runs after every
  // step, and a recorder's take() is a lock, a vector and a swap even when nothing was reported.
  std::atomic<std::uint64_t> untaken_reports_{0};
  std::vector<ErrorReport> take_reports() {
    untaken_reports_.store(0, std::memory_order_relaxed);
    return rec_.take();
  }
  std::optional<testing::FakeOsMemory> fake_;
  bool cap_set_ = false;
  Options options_;
  std::optional<Heap> heap_;
  std::optional<Heap> other_;
  void* other_obj_ = nullptr;

  oracle::ShadowHeap shadow_;
  std::uint64_t next_id_ = 0;
  std::uint64_t allocations_ = 0;
  std::uint64_t frees_ = 0;
  std::uint64_t large_frees_ = 0;  // large objects freed (T10 returns each at its free: owner)
  // Spans the heap returned to the page heap (testing::ProtocolPoint::page_free_begin), and the
  // count when the last step began: the model's span lives (oracle::ShadowHeap) need to know
  // whether a step released any.
  std::uint64_t span_releases_ = 0;
  std::uint64_t span_releases_before_ = 0;
  // The heap's stats at the end of the last step, and in the other slot at the end of the step
  // before. Refreshed in place: a Stats is a few hundred bytes, and copying one is a memcpy
  // through ASan's interceptor (two per step, 2% of an execution).
  std::array<Stats, 2> stats_slots_{};
  unsigned stats_now_ = 0;
  std::size_t rotor_ = 0;        // next live object for the per-step rotating check
  bool dirty_ = true;            // something ran since the last verify()
  std::size_t verified_at_ = 0;  // step after which verify() was last clean
  bool verified_ever_ = false;
  bool checked_nothing_to_sweep_ = false;
  std::array<bool, 8> stale_{};  // which explicit Ps the model knows to be stale
  bool stale_known_ = true;
  // The P the thread takes for a facade call (via_heap): the executor's testing::prefer_proc.
  static constexpr unsigned facade_proc = 0;
  std::uint64_t expected_lazy_flushes_ = 0;
};

}  // namespace spanheap::fuzz
