// world_ops: the operations on Ps, cycles, sweeping and the OS layer (collect, begin_cycle, the
// ragged barrier, flush_idle, flush_all, wake, sweep_one, proportional sweep, OS faults), each
// checked against the model's view of which Ps are stale (see execution.hpp).
#include <algorithm>

#include "execution.hpp"

namespace spanheap::fuzz {

void ProgramExecution::exec(const Collect&) {
  // Objects freed in this cycle must still be pending when it ends (after the cycle, the
  // cycle count no longer tells them apart). after_step() then runs the boundary check.
  scan_pending();
  if (!out_.ok) return;
  heap().collect();
  cycle_done();
  if (!expect_no_reports("collect()")) return;
  stale_.fill(false);
  stale_known_ = true;
}

void ProgramExecution::exec(const BeginCycle&) {
  scan_pending();
  if (!out_.ok) return;
  testing::begin_cycle(heap());
  cycle_done();
  if (!expect_no_reports("begin_cycle()")) return;
  for (unsigned i = 0; i < prog_.config.procs; ++i)
    stale_[i] = prog_.config.flush == FlushPolicy::lazy;
  stale_known_ = true;
}

void ProgramExecution::exec(const RaggedBarrier&) {
  const Stats before = heap().stats();
  testing::ragged_barrier(heap());
  if (!expect_no_reports("ragged_barrier()")) return;
  const Stats after = heap().stats();
  if (stale_known_) {
    const auto n = static_cast<std::uint64_t>(std::count(stale_.begin(), stale_.end(), true));
    if (after.flushes_barrier - before.flushes_barrier != n) {
      fail(CheckId::barrier_flush_count, "ragged_barrier flushed {} Ps; the model has {} stale",
           after.flushes_barrier - before.flushes_barrier, n);
      return;
    }
  }
  stale_.fill(false);
}

void ProgramExecution::exec(const FlushIdle& op) {
  const Stats before = heap().stats();
  const bool flushed = testing::flush_idle(heap(), op.proc);
  if (!expect_no_reports("flush_idle()")) return;
  const Stats after = heap().stats();
  if (after.flushes_barrier - before.flushes_barrier != (flushed ? 1u : 0u)) {
    fail(CheckId::flush_idle_counter,
         "flush_idle(P{}) returned {} but flushes_barrier went {} -> {}", op.proc, flushed,
         before.flushes_barrier, after.flushes_barrier);
    return;
  }
  if (stale_known_ && flushed != stale_[op.proc]) {
    fail(CheckId::flush_idle_answer, "flush_idle(P{}) returned {}, but the model says P{} is {}",
         op.proc, flushed, op.proc, stale_[op.proc] ? "stale" : "flushed");
    return;
  }
  stale_[op.proc] = false;
  note("{}", flushed ? "flushed" : "nothing to flush");
}

void ProgramExecution::exec(const FlushAll&) {
  testing::flush_all(heap());
  if (!expect_no_reports("flush_all()")) return;
  stale_.fill(false);
}

void ProgramExecution::exec(const Wake& op) {
  acquiring(op.proc);
  heap().proc(op.proc).wake();
  expect_no_reports("wake()");
}

void ProgramExecution::exec(const SweepOne&) {
  const bool swept = heap().sweep_one();
  if (!expect_no_reports("sweep_one()")) return;
  note("{}", swept ? "swept a span" : "nothing to sweep");
  if (!swept && !checked_nothing_to_sweep_) {
    checked_nothing_to_sweep_ = true;
    const testing::HeapSnapshot snap = testing::snapshot(heap());
    for (const auto& s : snap.spans) {
      if (s.in_use && s.sweepgen_delta == -2) {
        fail(CheckId::sweep_one_missed,
             "sweep_one() returned false but span {:#x} ({} pages, class {}) is unswept "
             "(sweepgen delta -2, {})",
             s.base, s.npages, s.span_class, testing::to_string(s.location));
        return;
      }
    }
  }
}

void ProgramExecution::exec(const ProportionalSweep& op) {
  const unsigned n = testing::proportional_sweep(heap(), op.bytes);
  if (!expect_no_reports("proportional_sweep()")) return;
  note("swept {} span(s)", n);
}

void ProgramExecution::exec(const FailOs& op) {
  if (!fake_) return note("no fake OS in this program: skipped");
  switch (op.fault) {
    case OsFault::fail_reserves:
      fake_->fail_reserves(op.n % 4);
      break;
    case OsFault::fail_commits:
      fake_->fail_commits(op.n % 4);
      break;
    case OsFault::cap_committed:
      fake_->cap_committed(std::size_t{op.n} << 18);
      cap_set_ = op.n != 0;
      break;
  }
}

}  // namespace spanheap::fuzz
