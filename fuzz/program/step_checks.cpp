// step_checks: what the model checks after every step and at boundaries (cycle operations,
// Verify operations, the end); see execution.hpp and executor.hpp.
#include <spanheap/oracle/snapshot_check.hpp>

#include "execution.hpp"

namespace spanheap::fuzz {
namespace {

// Live objects whose ends are checked after every step, round robin (boundary checks cover all).
constexpr unsigned rotating_checks = 2;

}  // namespace

// A P that acquires flushes itself first if it is stale (lazy flush at acquire), exactly once.
// Through the facade the P is the thread's: facade_proc, which the executor made its first choice
// (testing::prefer_proc) and which is idle whenever a step starts, so the thread takes it again.
void ProgramExecution::acquiring(unsigned proc) {
  if (proc == via_heap) proc = facade_proc;
  if (proc < stale_.size()) {
    if (stale_[proc] && prog_.config.flush == FlushPolicy::lazy) expected_lazy_flushes_ = 1;
    stale_[proc] = false;
  }
}

// A rejected call must not change what is live or what was counted. It may sweep (a free
// makes its span swept first, as Go's ensureSwept does), which reclaims objects freed before
// the cycle: pending_frees and live_bytes may only go down, and only by reclaiming.
bool ProgramExecution::unchanged(const Stats& before, const char* what) {
  const Stats after = heap().stats();
  if (after.live_objects - after.pending_frees != before.live_objects - before.pending_frees ||
      after.pending_frees > before.pending_frees || after.allocations != before.allocations ||
      after.frees != before.frees || after.live_bytes > before.live_bytes) {
    fail(CheckId::bad_call_changed_heap,
         "{} changed the heap: live_objects {} -> {}, pending_frees {} -> {}, allocations {} -> "
         "{}, frees {} -> {}, live_bytes {} -> {}",
         what, before.live_objects, after.live_objects, before.pending_frees, after.pending_frees,
         before.allocations, after.allocations, before.frees, after.frees, before.live_bytes,
         after.live_bytes);
    return false;
  }
  return true;
}

bool ProgramExecution::structure_changed(const Stats& before) {
  const Stats after = heap().stats();
  return after.swept_on_demand != before.swept_on_demand ||
         after.swept_by_flush != before.swept_by_flush ||
         after.swept_proportional != before.swept_proportional ||
         after.swept_termination != before.swept_termination ||
         after.flushes_lazy != before.flushes_lazy ||
         after.flushes_barrier != before.flushes_barrier ||
         after.flushes_eager != before.flushes_eager || after.mapped_bytes != before.mapped_bytes ||
         after.span_bytes != before.span_bytes || after.released_bytes != before.released_bytes;
}

// After every step: no report, the flush counters and the stats counts agree with the model, and
// the ends of a few live objects are intact; at a boundary, the whole-heap check.
void ProgramExecution::after_step(const Op& op) {
  const Stats& before = advance_stats();
  if (!expect_no_reports("the step")) return;
  if (stats().cycles != before.cycles && !op_is<Collect>(op) && !op_is<BeginCycle>(op)) {
    // Pacing started a cycle inside an allocation: which Ps went stale is up to the heap.
    stale_known_ = false;
    cycle_done();
  }
  if (span_releases_ != span_releases_before_) shadow_.spans_released();
  if (!check_flush_counters(op, before) || !check_counts() || !check_reclaim_counters()) return;
  // Between boundaries: the ends of a few live objects per step, round robin, so an object
  // clobbered by a step is seen within live/2 steps even in a program without cycles; the
  // objects a step touched were checked in full by the step itself.
  const auto& live = shadow_.live();
  for (unsigned k = 0; k < rotating_checks && !live.empty(); ++k) {
    if (!check_contents(live[rotor_++ % live.size()], false)) return;
  }
  if (is_boundary(op) && !op_is<Verify>(op)) {
    boundary_check("after the cycle operation");  // Verify ran it itself
  }
}

// The lazy and barrier flushes a step made against the Ps the model knows to be stale.
bool ProgramExecution::check_flush_counters(const Op& op, const Stats& before) {
  // Lazy flushes: an explicit-P acquire of a stale P must flush exactly once.
  if (explicit_procs_ && stale_known_ && prog_.config.flush == FlushPolicy::lazy) {
    const std::uint64_t lazy = stats().flushes_lazy - before.flushes_lazy;
    if (lazy != expected_lazy_flushes_) {
      fail(CheckId::flushes_lazy, "flushes_lazy went up by {} in this step; the model expected {}",
           lazy, expected_lazy_flushes_);
      return false;
    }
  }
  // A free of an object in a span that another, idle P still caches from before the cycle
  // makes the heap flush that P on the spot (ensure_swept helping the ragged barrier). The
  // model cannot see span ownership cheaply, so it reads the snapshot when that happens and
  // checks that exactly the counted number of stale Ps became flushed, and no other P changed.
  const bool barrier_op = op_is<FlushIdle>(op) || op_is<RaggedBarrier>(op) || op_is<Collect>(op) ||
                          op_is<BeginCycle>(op);
  if (!explicit_procs_ || !stale_known_ || barrier_op ||
      stats().flushes_barrier == before.flushes_barrier)
    return true;
  const testing::HeapSnapshot snap = testing::snapshot(heap());
  std::uint64_t helped = 0;
  for (const auto& pi : snap.procs) {
    if (pi.index >= stale_.size()) continue;
    const bool stale = pi.flush_gen_delta == -2;
    if (stale && !stale_[pi.index]) {
      fail(CheckId::stale_after_flush,
           "P{} is stale in the snapshot but was flushed and no cycle started", pi.index);
      return false;
    }
    if (!stale && stale_[pi.index]) ++helped;
    stale_[pi.index] = stale;
  }
  if (helped != stats().flushes_barrier - before.flushes_barrier) {
    fail(CheckId::flushes_barrier,
         "flushes_barrier went up by {} in this step, but {} stale P(s) became flushed",
         stats().flushes_barrier - before.flushes_barrier, helped);
    return false;
  }
  note("(the heap flushed {} idle stale P(s) to free into their span)", helped);
  return true;
}

// The allocation and free counters, and live_objects = live + (at most every) pending object.
bool ProgramExecution::check_counts() {
  if (stats().allocations != allocations_ || stats().frees != frees_) {
    fail(CheckId::stats_counters, "stats: allocations {} (model {}), frees {} (model {})",
         stats().allocations, allocations_, stats().frees, frees_);
    return false;
  }
  const std::size_t live = shadow_.live().size(), pending = shadow_.pending().size();
  if (stats().live_objects < live || stats().live_objects - live > pending ||
      stats().pending_frees != stats().live_objects - live) {
    fail(CheckId::stats_live,
         "stats: live_objects {} and pending_frees {}, but the model has {} live and at most {} "
         "pending",
         stats().live_objects, stats().pending_frees, live, pending);
    return false;
  }
  return true;
}

// The reuse counters against the model. Under next_cycle nothing is collected and no large span
// goes back at its free (T9 and T10 are owner's); under owner every large free returned its
// span (T10), and collections reclaim only objects that were freed.
bool ProgramExecution::check_reclaim_counters() {
  const bool owner = shadow_.policy().collects();
  const std::uint64_t large = owner ? large_frees_ : 0;
  if ((!owner && (stats().collections != 0 || stats().collected_objects != 0)) ||
      stats().large_frees != large || stats().collected_objects + large > frees_ ||
      stats().collections > stats().collected_objects) {
    fail(CheckId::reuse_counters,
         "stats: {} collections of {} objects and {} large frees under reuse={}, but the model "
         "freed {} objects, {} of them large",
         stats().collections, stats().collected_objects, stats().large_frees,
         owner ? "owner" : "next_cycle", frees_, large_frees_);
    return false;
  }
  return true;
}

// The whole-heap check at a boundary (a cycle operation, a Verify operation, the end): every
// live object's sampled contents and find_object, the pending frees, the snapshot's span and P
// states (explicit-P and page-heap targets) and heap.verify(), unless nothing ran since the
// last verify. (owns and usable_size are checked at allocation and by Check operations; a
// later change of the size would show in find_object's size.)
void ProgramExecution::boundary_check(const char* when) {
  // The targets that read the snapshot get the verify from the same census (one walk of the
  // heap instead of two); nothing below changes the heap, so the snapshot stays current. Its
  // storage outlives the execution: two vectors fewer to allocate at every boundary.
  static thread_local testing::HeapSnapshot storage;
  const testing::HeapSnapshot* snap = nullptr;
  if (prog_.target == Target::procs_interleave || prog_.target == Target::page_heap) {
    VerifyResult r;
    const bool verifying = dirty_;
    testing::snapshot(heap(), storage, verifying ? &r : nullptr);
    snap = &storage;
    if (!expect_no_reports("snapshot()")) return;
    if (verifying) verified(r, when);
  } else {
    verify_if_dirty(when);
  }
  if (!out_.ok) return;
  scan_pending();
  if (!out_.ok) return;
  refresh_stats();
  const auto& live = shadow_.live();
  const auto& pending = shadow_.pending();
  if (stats().pending_frees != pending.size() ||
      stats().live_objects != live.size() + pending.size()) {
    fail(CheckId::stats_live,
         "stats: live_objects {} / pending_frees {}, model {} live + {} pending",
         stats().live_objects, stats().pending_frees, live.size(), pending.size());
    return;
  }
  // What the heap reclaimed (the model has just read it, object by object) came from sweeps,
  // collections and large frees; before the first cycle nothing was swept, so the collections
  // and large frees counted are exactly what was reclaimed (INV-C for owner reuse).
  const std::uint64_t reclaimed = frees_ - pending.size();
  const std::uint64_t counted = stats().collected_objects + stats().large_frees;
  if (counted > reclaimed || (stats().cycles == 0 && counted != reclaimed)) {
    fail(CheckId::reuse_counters,
         "{} objects reclaimed (model), but stats count {} collected and {} large frees in {} "
         "cycles",
         reclaimed, stats().collected_objects, stats().large_frees, stats().cycles);
    return;
  }
  for (const LiveObject& o : live) {
    if (!check_contents(o, true) || !check_found(o)) return;
  }
  if (testing::sweep_done(heap())) {
    for (const FreedObject& f : pending) {
      if (shadow_.policy().must_be_reclaimed(f, stats().cycles, true)) {
        fail(CheckId::sweep_done_pending,
             "sweep_done() holds but #{} (freed in cycle {}, now {}) is still pending", f.id,
             f.freed_in_cycle, stats().cycles);
        return;
      }
    }
  }
  if (snap) check_snapshot(*snap);
}

// The snapshot's invariants (the shared checker, oracle/snapshot_check.hpp), then what only the
// model knows: no live object in a free page run, and which explicit Ps are stale.
void ProgramExecution::check_snapshot(const testing::HeapSnapshot& snap) {
  if (const std::vector<Violation> v = oracle::snapshot_violations(snap); !v.empty()) {
    fail(CheckId::snapshot_rules, "snapshot: {} violation(s):\n{}", v.size(), oracle::join(v));
    refine(CheckId::snapshot_rules, v.front().invariant);
    return;
  }
  for (const auto& s : snap.spans) {
    if (s.in_use) continue;
    if (const LiveObject* o = shadow_.live_overlap(s.base, s.npages * page_size)) {
      fail(CheckId::free_run_live, "live #{} at {} lies in free page run {:#x} (+{} pages)", o->id,
           static_cast<void*>(o->p), s.base, s.npages);
      return;
    }
  }
  if (!explicit_procs_ || !stale_known_) return;
  for (const auto& pi : snap.procs) {
    const bool stale = pi.flush_gen_delta == -2;
    if (pi.index < stale_.size() && stale != stale_[pi.index]) {
      fail(CheckId::snapshot_stale, "snapshot: P{} is {} but the model says {}", pi.index,
           stale ? "stale" : "flushed", stale_[pi.index] ? "stale" : "flushed");
      return;
    }
  }
}

}  // namespace spanheap::fuzz
