// execution: see execution.hpp; the run loop, the heap it builds, error reports, verify() and the
// final checks.
#include "execution.hpp"

#include "recycling_os.hpp"
#include "sanitizers.hpp"

namespace spanheap::fuzz {

const char* kind_name(PointerKind k) {
  switch (k) {
    case PointerKind::foreign:
      return "foreign";
    case PointerKind::other_heap:
      return "other_heap";
    case PointerKind::free_pages:
      return "free_pages";
    case PointerKind::span_tail:
      return "span_tail";
    case PointerKind::free_slot:
      return "free_slot";
    case PointerKind::interior:
      return "interior";
    case PointerKind::object_start:
      return "object_start";
  }
  return "?";
}

ProgramExecution::ProgramExecution(const Program& program, const RunOptions& options)
    : prog_(program),
      opts_(options),
      explicit_procs_(program.target == Target::procs_interleave),
      shadow_(oracle::ReusePolicy{program.config.reuse}) {
  // At most one object per operation: no reallocation while the program runs (each one is an
  // ASan malloc with a stack trace, in every execution).
  shadow_.reserve(program.ops.size());
}

Outcome ProgramExecution::run() {
  if (!has_heap(prog_.target)) {
    for (step_ = 0; step_ < prog_.ops.size() && out_.ok; ++step_) {
      line_.clear();
      if (const auto* q = std::get_if<SizeQuery>(&prog_.ops[step_])) size_query(*q);
      if (const auto* q = std::get_if<PacingQuery>(&prog_.ops[step_])) pacing_query(*q);
      trace_step();
    }
    return std::move(out_);
  }
  make_heap();
  for (step_ = 0; step_ < prog_.ops.size() && out_.ok; ++step_) {
    line_.clear();
    expected_lazy_flushes_ = 0;
    span_releases_before_ = span_releases_;
    const Op& op = prog_.ops[step_];
    // Operations that only read the heap, or only write inside a live object, leave the last
    // verify() standing.
    if (!op_is<Verify>(op) && !op_is<Check>(op) && !op_is<Refill>(op) && !op_is<Corrupt>(op)) {
      dirty_ = true;
    }
    std::visit([this](const auto& o) { exec(o); }, op);
    if (out_.ok) after_step(op);
    trace_step();
  }
  if (out_.ok) finish();
  return std::move(out_);
}

void ProgramExecution::trace_step() {
  if (opts_.trace) {
    fmt::format_to(std::back_inserter(out_.trace), "  {:4}  {}{}{}\n", step_,
                   describe(prog_.ops[step_]), line_.empty() ? "" : "  -> ", line_);
  }
  out_.ops_run = step_ + 1;
}

void ProgramExecution::make_heap() {
  const HeapConfig& c = prog_.config;
  Options o;
  o.procs = c.procs;
  o.sweepers = 0;
  o.flush = c.flush;
  // The input chooses the policy; the shadow model's oracle::ReusePolicy says what each allows.
  o.reuse = c.reuse;
  o.gc_percent = c.gc_percent;
  o.memory_limit = std::size_t{c.memory_limit_mib} << 20;
  o.error_handler = [this, record = rec_.handler()](const ErrorReport& r) {
    record(r);
    untaken_reports_.fetch_add(1, std::memory_order_release);  // after the report is recorded
  };
  // The debug tier (protocol preconditions on every path); the expensive tier would add a
  // whole-heap census inside every cycle, which the explicit verify() at each boundary
  // replaces (docs/fuzzing.md "The oracle").
  o.checks = CheckLevel::debug;
  // The allocation hooks (freed slots clobbered, and poisoned under ASan, then checked and
  // unpoisoned at allocation) keep every allocation off the fast paths (HeapState::
  // allocation_hooks) and the thread from binding its P: with them on, no input ever reached the
  // allocation fast path or the bound entry. Arenas of 3 and 4 MiB (bit 7 of header byte 0) run
  // without them, so those paths meet the oracle's content, overlap and count checks; 1 and 2 MiB
  // keep the write-after-free check. Bit 6 picks the growth rule (huge pages below), so the four
  // sizes cover both choices of both.
  const bool hooks = c.arena_mib <= 2;
  o.debug.clobber_freed = hooks;
#ifdef SPANHEAP_FUZZ_ASAN
  o.debug.poison_freed = hooks;
#endif
  o.arena_bytes = std::size_t{c.arena_mib} << 20;
  // Small arenas and small commit chunks (16 pages, not 64): growth, arena ends and coalescing
  // with fresh runs come sooner, and less is committed, poisoned and recycled per execution.
  o.commit_bytes = std::size_t{128} << 10;
  // Huge-page arenas (aligned to 2 MiB; the heap's first grown by commit_bytes through its first
  // huge page and advised past it, every later one grown by whole huge pages) for the even sizes,
  // so that every growth rule is reached without a field of their own in the encoding. The
  // recycling provider ignores the advice: no execution waits for the kernel to build a huge page.
  o.huge_pages = c.arena_mib % 2 == 0;
  RecyclingOsMemory::instance().declare_writes(true);  // declare_written() below
  if (c.fake_os) {
    fake_.emplace(RecyclingOsMemory::instance());  // failures injected over recycled arenas
    o.os = &*fake_;
  } else {
    o.os = &RecyclingOsMemory::instance();  // arenas reused between executions
  }
  options_ = o;
  heap_.emplace(o);
  // The facade's P is then the same in every process (else a hash of the thread's id), so a
  // program that fails in a fuzzing process fails the same way in ci/repro's, and the model
  // knows which P a facade call flushes.
  testing::prefer_proc(*heap_, facade_proc);
  testing::set_protocol_hook(*heap_, [this](testing::ProtocolPoint) { ++span_releases_; },
                             {testing::ProtocolPoint::page_free_begin});
  refresh_stats();
  stale_.fill(false);
}

void* ProgramExecution::do_alloc(unsigned proc, std::size_t size, std::size_t align) {
  return proc == via_heap ? heap().allocate(size, align) : heap().proc(proc).allocate(size, align);
}

void ProgramExecution::do_free(unsigned proc, void* p) {
  if (proc == via_heap) {
    heap().free(p);
  } else {
    heap().proc(proc).free(p);
  }
}

bool ProgramExecution::expect_no_reports(const char* what) {
  if (untaken_reports_.load(std::memory_order_acquire) == 0) return true;
  auto reports = take_reports();
  if (!reports.empty()) {
    fail(CheckId::report_unexpected,
         "unexpected error report during {}: {} (kind {}), {} report(s) in total", what,
         reports.front().message, to_string(reports.front().kind), reports.size());
    refine(CheckId::report_unexpected, to_string(reports.front().kind));
    return false;
  }
  return true;
}

bool ProgramExecution::expect_one_report(ErrorKind kind, const void* ptr, const char* what) {
  auto reports = take_reports();
  if (reports.size() != 1) {
    fail(CheckId::report_count, "{}: expected exactly one {} report, got {}{}{}", what,
         to_string(kind), reports.size(), reports.empty() ? "" : ": first is ",
         reports.empty() ? std::string() : reports.front().message);
    return false;
  }
  if (reports[0].kind != kind) {
    fail(CheckId::report_kind, "{}: expected error kind {}, heap reported {}: {}", what,
         to_string(kind), to_string(reports[0].kind), reports[0].message);
    return false;
  }
  if (ptr != nullptr && reports[0].ptr != ptr) {
    fail(CheckId::report_ptr, "{}: report names ptr {} but the bad pointer was {}: {}", what,
         reports[0].ptr, ptr, reports[0].message);
    return false;
  }
  return true;
}

// Records the outcome of a whole-heap verify (Heap::verify or a verifying snapshot).
void ProgramExecution::verified(const VerifyResult& r, const char* when) {
  dirty_ = false;
  if (!r.ok()) {
    fail(CheckId::heap_verify,
         "heap.verify() {} found {} violation(s) (last clean verify: {}):\n{}", when,
         r.violations.size(), last_clean_verify(), r.to_string());
    refine(CheckId::heap_verify, r.violations.front().invariant);
    return;
  }
  if (!expect_no_reports("verify()")) return;
  verified_at_ = step_;
  verified_ever_ = true;
}

// verify() walks the whole heap with the world stopped, the most expensive call there is; it
// runs only where something ran since the last one.
void ProgramExecution::verify_if_dirty(const char* when) {
  if (dirty_) verify(when);
}

std::string ProgramExecution::last_clean_verify() const {
  if (!verified_ever_) return "none yet";
  if (verified_at_ >= prog_.ops.size()) return "at the end of the program, before the final frees";
  return fmt::format("after step {}", verified_at_);
}

// End of program: everything checked in full, then everything freed and reclaimed.
void ProgramExecution::finish() {
  step_ = prog_.ops.size();
  line_.clear();
  boundary_check("at the end");
  if (!out_.ok) return;
  for (const LiveObject& o : shadow_.live()) heap().free(o.p);
  frees_ += shadow_.live().size();
  shadow_.free_all(stats().cycles);
  if (!expect_no_reports("freeing every live object at the end")) return;
  // One cycle makes every pending free reclaimable (the ragged barrier sweeps what stale
  // caches held); sweeping whatever is left reclaims the rest.
  heap().collect();
  while (heap().sweep_one()) {
  }
  if (!expect_no_reports("the final cycles")) return;
  const Stats s = heap().stats();
  if (s.live_objects != 0 || s.pending_frees != 0) {
    fail(CheckId::heap_empty_at_end,
         "after freeing everything, a cycle and a full sweep, the heap still has {} live objects "
         "and {} "
         "pending frees",
         s.live_objects, s.pending_frees);
    return;
  }
  verify("after the final cycles");
  if (opts_.trace && out_.ok) {
    out_.trace += "  end   freed everything, a cycle, swept: heap empty, verify() clean\n";
  }
}

Outcome run(const Program& program, const RunOptions& options) {
  return ProgramExecution(program, options).run();
}

std::string Outcome::crash_state() const {
  if (ok) return {};
  std::string out(to_string(check));
  if (!check_detail.empty()) out += fmt::format(" ({})", check_detail);
  return out;
}

std::string Outcome::report(const Program& program) const {
  if (ok) return "ok";
  std::string out =
      fmt::format("oracle failure at step {} of {}: {}\n", step, program.ops.size(), failure);
  Program so_far = program;
  if (step < so_far.ops.size()) so_far.ops.resize(step + 1);
  out += to_trace(so_far);
  if (!trace.empty()) out += "executed:\n" + trace;
  return out;
}

}  // namespace spanheap::fuzz
