// step_oracle: CheckedHeap::finish, the checks of one step of a property test — the reports it
// made, the static invariants of the new snapshot, and every difference from the previous one:
// sweepgen moves (judged by the oracle library's moves table, oracle/sweepgen_moves.hpp), new
// spans, sweeps, flushes, allocations and the object table. See heap_oracle.hpp.
#include <fmt/format.h>
#include <spanheap/oracle/shadow.hpp>
#include <spanheap/oracle/snapshot_check.hpp>
#include <spanheap/oracle/sweepgen_moves.hpp>

#include <algorithm>
#include <optional>

#include "heap_oracle.hpp"
#include "step_diff.hpp"

namespace spanheap::props {
namespace {

std::uintptr_t span_end(const SpanInfo& s) { return s.base + s.npages * page_size; }

bool is_partial(SpanLocation loc) {
  return loc == SpanLocation::central_partial_swept || loc == SpanLocation::central_partial_unswept;
}

std::uint64_t total_swept(const Stats& s) {
  return s.swept_background + s.swept_proportional + s.swept_on_demand + s.swept_by_flush +
         s.swept_termination;
}

bool acquires_proc(Op op) {
  return op == Op::allocate || op == Op::fill || op == Op::free || op == Op::wake ||
         op == Op::flush_idle;
}

bool allocates(Op op) { return op == Op::allocate || op == Op::fill; }

std::map<std::uintptr_t, const SpanInfo*> in_use_by_base(const HeapSnapshot& snap) {
  std::map<std::uintptr_t, const SpanInfo*> out;
  for (const SpanInfo& s : snap.spans)
    if (s.in_use) out.emplace(s.base, &s);
  return out;
}

}  // namespace

std::vector<std::string> CheckedHeap::finish(const Step& called) {
  std::vector<std::string> v = std::move(overlap_);
  overlap_.clear();
  HeapSnapshot cur = testing::snapshot(heap());
  // A facade step is judged as a step of the P its calls used, once finish() knows which.
  std::optional<Step> resolved;
  if (called.facade) {
    resolved = called;
    resolved->proc = resolve_facade_proc(called, cur, v);
  }
  const Step& step = resolved ? *resolved : called;
  const bool bump = step.op == Op::begin_cycle || step.op == Op::collect;
  StepDiff d{step,
             last_,
             cur,
             in_use_by_base(last_),
             in_use_by_base(cur),
             bump,
             setup_.flush == FlushPolicy::lazy,
             acquires_proc(step.op),
             -1,
             {},
             0,
             v};
  // A free into a span that an idle stale P caches needs that span swept first (Go's
  // ensureSwept); the heap may take the idle P and flush it, as the ragged barrier would. That P
  // then counts as an owner of its spans for this step.
  if (step.op == Op::free || step.op == Op::bad_free) {
    const SpanInfo* sp = span_containing(last_, step.ptr);
    if (sp && sp->in_use && sp->sweepgen_delta == 1 && sp->cache_proc != step.proc &&
        sp->cache_proc >= 0 && cur.procs[sp->cache_proc].flush_gen_delta == 0)
      d.helped_proc = sp->cache_proc;
  }
  check_reports(d);
  check_static(d);
  for (const auto& [base, x] : d.prev_spans) check_span_move(d, *x);
  check_new_spans(d);
  check_sweeps(d);
  check_flushes(d);
  check_allocations(d);
  check_collections(d);
  check_objects(d);
  if (!v.empty()) v.push_back("before:\n" + describe(last_) + "after:\n" + describe(cur));
  for (const SpanInfo& s : cur.spans)
    if (s.in_use)
      for (std::size_t k = 0; k < s.npages; ++k) used_pages_.insert(s.base + k * page_size);
  last_ = std::move(cur);
  return v;
}

// Only a bad free may report, and exactly once with one of its kinds.
void CheckedHeap::check_reports(StepDiff& d) {
  const Step& step = d.step;
  std::vector<ErrorReport> reports = test_.errors.take();
  if (step.op == Op::bad_free) {
    if (reports.size() != 1) {
      d.bad(fmt::format("bad free of {:#x} made {} reports", step.ptr, reports.size()));
    } else if (!step.expected_errors.empty() &&
               std::find(step.expected_errors.begin(), step.expected_errors.end(),
                         reports[0].kind) == step.expected_errors.end()) {
      std::string want;
      for (ErrorKind k : step.expected_errors)
        want += std::string(want.empty() ? "" : "|") + spanheap::to_string(k);
      d.bad(fmt::format("bad input {:#x} reported {} instead of {}: {}", step.ptr,
                        spanheap::to_string(reports[0].kind), want, reports[0].message));
    }
  } else {
    for (const auto& r : reports) d.bad("unexpected report: " + r.message);
  }
  const Stats& s0 = d.before.stats;
  const Stats& s1 = d.cur.stats;
  if (s1.errors - s0.errors != reports.size())
    d.bad(fmt::format("stats.errors grew by {}, {} reports seen", s1.errors - s0.errors,
                      reports.size()));
}

// The new snapshot on its own: the shared snapshot rules, the OS and page map and slot probes,
// verify(), and the sweepgen and cycle counts.
void CheckedHeap::check_static(StepDiff& d) {
  for (auto& m : snapshot_violations(d.cur, setup_.procs)) d.bad(std::move(m));
  if (checks_.accounting)
    for (auto& m : os_accounting_violations(d.cur, test_.os)) d.bad(std::move(m));
  if (checks_.page_map)
    for (auto& m : page_map_violations(heap(), d.cur)) d.bad(std::move(m));
  if (checks_.slots)
    for (const SpanInfo& s : d.cur.spans)
      for (auto& m : slot_violations(heap(), s)) d.bad(std::move(m));
  if (checks_.verify) {
    VerifyResult r = heap().verify();
    if (!r.ok()) d.bad("heap.verify(): " + r.to_string());
  }
  if (d.cur.sweepgen != d.before.sweepgen + (d.bump ? 2u : 0u))
    d.bad(fmt::format("sweepgen {} -> {}", d.before.sweepgen, d.cur.sweepgen));
  if (d.cur.stats.cycles != d.before.stats.cycles + (d.bump ? 1 : 0))
    d.bad(fmt::format("cycles {} -> {}", d.before.stats.cycles, d.cur.stats.cycles));
}

// A cycle: termination sweeps every span that needs it (and flushes stale Ps); the bump relabels.
void CheckedHeap::check_cycle_move(StepDiff& d, const SpanInfo& x, const SpanInfo* c,
                                   const std::string& id) {
  const std::int64_t d0 = x.sweepgen_delta;
  const std::int64_t d1 = c ? c->sweepgen_delta : 99;
  const bool needs = d0 == -2 || d0 == 1;
  bool swept_now = needs;
  if (d0 == 3) {
    if (d.lazy && d.step.op == Op::begin_cycle) {
      if (!c || d1 != 1 || c->cache_proc != x.cache_proc)
        d.bad("cycle: a current cached span must become sg+1 in the same cache: " + id);
    } else if (d.lazy) {  // collect: bumped to sg+1, then swept by the barrier's flush
      swept_now = true;
      if (c && d1 != 0) d.bad("collect: cached span not flushed and swept by the barrier: " + id);
    } else if (!c || d1 != -2) {
      d.bad("eager cycle: cached span must be flushed in the pause and left unswept: " + id);
    }
  } else if (!c) {
    if (!needs) d.bad("cycle: a swept span vanished without a sweep: " + id);
  } else if (d1 != -2) {
    d.bad("cycle: an uncached span must be at sg-2 after the bump: " + id);
  }
  if (swept_now) d.sweep(x.base);
}

// Who acted on span x in this step, for the moves table.
unsigned CheckedHeap::actors_on(const StepDiff& d, const SpanInfo& x, const SpanInfo& c) const {
  const Step& step = d.step;
  const Op op = step.op;
  unsigned actors = 0;
  const bool by_owner = (d.owner_step && x.cache_proc == step.proc) ||
                        (d.helped_proc >= 0 && x.cache_proc == d.helped_proc);
  const bool flush_or_noop = op == Op::wake || op == Op::flush_idle || op == Op::ragged_barrier ||
                             op == Op::idle || op == Op::flush_all;
  const bool bad_free_elsewhere =
      op == Op::bad_free && !(step.ptr >= x.base && step.ptr < span_end(x));
  if (!flush_or_noop && !bad_free_elsewhere) actors |= oracle::sweeper;
  if (by_owner) actors |= oracle::owner;
  // An allocating P caches a span it swept or took from central; a refill uncaches the old one.
  if (allocates(op) && (c.cache_proc == step.proc || by_owner)) actors |= oracle::allocating_owner;
  if (op == Op::ragged_barrier || op == Op::flush_all) actors |= oracle::barrier;
  if (op == Op::flush_all) actors |= oracle::flush_all;
  return actors;
}

// One span of the previous snapshot against the new one.
void CheckedHeap::check_span_move(StepDiff& d, const SpanInfo& x) {
  auto it = d.cur_spans.find(x.base);
  const SpanInfo* c = nullptr;
  if (it != d.cur_spans.end() && it->second->span_class == x.span_class &&
      it->second->npages == x.npages)
    c = it->second;
  const std::string id = describe(x) + " -> " + (c ? describe(*c) : std::string("gone"));
  if (d.bump) return check_cycle_move(d, x, c, id);
  const std::int64_t d0 = x.sweepgen_delta;
  // T10 (owner reuse): the free of a large object returns its span to the page heap at once
  // (swept first on demand when it was unswept, as every free does: Go's ensureSwept).
  if (!c && (d0 == 0 || d0 == -2) && x.span_class == 0 && d.step.op == Op::free &&
      d.step.ptr == x.base && oracle::ReusePolicy{setup_.reuse}.reclaimed_at_free(true)) {
    d.released_at_free.insert(x.base);
    if (d0 == -2) d.sweep(x.base);
    return;
  }
  if (!c) {
    if (d0 != -2 && d0 != 1) d.bad("a swept span vanished without a sweep: " + id);
    d.sweep(x.base);
    return;
  }
  const std::int64_t d1 = c->sweepgen_delta;
  if (d0 != -2 && d0 != 0 && d0 != 1 && d0 != 3) return;  // reported by the static check
  const unsigned actors = actors_on(d, x, *c);
  const oracle::MoveVerdict verdict = oracle::judge_sweepgen_move(d0, d1, actors);
  if (!verdict.allowed) d.bad(fmt::format("{}: {}: {}", verdict.invariant, verdict.rule, id));
  if (verdict.sweeps) d.sweep(x.base);
  if ((d0 == 1 || d0 == 3) && d1 == d0 && c->cache_proc != x.cache_proc)
    d.bad("INV-S3: a cached span moved to another cache: " + id);
  if (d0 == 3 && d1 == 0 && d.step.op == Op::allocate && (actors & oracle::owner) &&
      c->alloc_count != c->nelems)
    d.bad("C6: refill uncached a span with free slots: " + id);
  // Spans cached by other Ps are untouchable (owner: P), except for frees into them.
  if ((d0 == 1 || d0 == 3) && !(actors & (oracle::owner | oracle::barrier)) &&
      (d1 != d0 || c->cache_proc != x.cache_proc))
    d.bad("another P's cached span changed: " + id);
}

// New spans are born swept (T1): at sg, or at sg+3 when the allocating P cached them; central
// grows only when no partial span of the class is left unused.
void CheckedHeap::check_new_spans(StepDiff& d) {
  const Step& step = d.step;
  for (const auto& [base, c] : d.cur_spans) {
    auto it = d.prev_spans.find(base);
    const bool is_new = it == d.prev_spans.end() || it->second->span_class != c->span_class ||
                        it->second->npages != c->npages;
    if (!is_new) continue;
    if (!allocates(step.op))
      d.bad("a span appeared in a step that does not allocate: " + describe(*c));
    if (!(c->sweepgen_delta == 0 || (c->sweepgen_delta == 3 && c->cache_proc == step.proc)))
      d.bad("T1: a new span is not at sg (or sg+3 in the allocating cache): " + describe(*c));
    if (step.op != Op::allocate || c->span_class == 0) continue;
    for (const auto& [b, x] : d.prev_spans)
      if (x->span_class == c->span_class && is_partial(x->location) && !d.swept.count(b) &&
          d.cur_spans.count(b) && d.cur_spans.at(b)->location == x->location)
        d.bad("central grew a span while a partial span of the class stayed unused: " +
              describe(*x));
  }
}

// Swept spans that stayed in central (INV-A4: free_index 0, pending cleared, count = survivors)
// and each span swept exactly once, by the count the stats and the step's result give.
void CheckedHeap::check_sweeps(StepDiff& d) {
  const Step& step = d.step;
  std::map<std::uintptr_t, unsigned> freed_in_step;  // span base -> frees recorded in this step
  if (step.op == Op::free) {
    if (const SpanInfo* sp = span_containing(d.cur, step.ptr)) ++freed_in_step[sp->base];
  }
  for (std::uintptr_t base : d.swept) {
    auto it = d.cur_spans.find(base);
    if (it == d.cur_spans.end()) continue;
    const SpanInfo* c = it->second;
    const SpanInfo* x = d.prev_spans.at(base);
    if (c->location == SpanLocation::cached) continue;  // allocated from after the sweep
    bool allocated_into = false;
    for (std::uintptr_t p : step.allocated) allocated_into |= p >= c->base && p < span_end(*c);
    if (allocated_into) continue;  // swept, cached, filled and flushed within this step
    if (c->free_index != 0) d.bad("INV-A4: swept span's free_index is not 0: " + describe(*c));
    const unsigned frees = freed_in_step.count(base) ? freed_in_step[base] : 0;
    if (c->pending_frees != frees) d.bad("INV-A4: swept span kept pending frees: " + describe(*c));
    if (c->alloc_count != x->alloc_count - x->pending_frees)
      d.bad(fmt::format("INV-A4/C18: sweep left count {} from {} with {} pending: {}",
                        c->alloc_count, x->alloc_count, x->pending_frees, describe(*c)));
  }
  const std::uint64_t sweeps = total_swept(d.cur.stats) - total_swept(d.before.stats);
  if (sweeps != d.expected_sweeps)
    d.bad(fmt::format("each span swept exactly once: stats count {} sweeps, the snapshots show {}",
                      sweeps, d.expected_sweeps));
  if (step.op == Op::sweep_one) {
    bool any = false;
    for (const auto& [b, x] : d.prev_spans) any |= x->sweepgen_delta == -2;
    if (step.result_bool != any)
      d.bad(fmt::format("sweep_one returned {} with unswept={}", step.result_bool, any));
    if (d.expected_sweeps != (any ? 1u : 0u))
      d.bad(fmt::format("sweep_one swept {} spans", d.expected_sweeps));
  }
  if (step.op == Op::proportional_sweep && step.result_count != d.expected_sweeps)
    d.bad(fmt::format("proportional_sweep returned {} but swept {}", step.result_count,
                      d.expected_sweeps));
}

// flush_gen of every P and the flush counters by kind.
void CheckedHeap::check_flushes(StepDiff& d) {
  const Step& step = d.step;
  const Stats& s0 = d.before.stats;
  const Stats& s1 = d.cur.stats;
  unsigned stale_before = 0;
  for (const auto& p : d.before.procs) stale_before += p.flush_gen_delta == -2;
  for (std::size_t j = 0; j < d.cur.procs.size() && j < d.before.procs.size(); ++j) {
    const std::int64_t f0 = d.before.procs[j].flush_gen_delta, f1 = d.cur.procs[j].flush_gen_delta;
    const bool acquired =
        (d.owner_step && static_cast<int>(j) == step.proc) || static_cast<int>(j) == d.helped_proc;
    if (d.bump) {
      const std::int64_t want = (d.lazy && step.op == Op::begin_cycle) ? -2 : 0;
      if (f1 != want)
        d.bad(fmt::format("P{} flush_gen{:+} after the cycle, want {:+}", j, f1, want));
    } else if (step.op == Op::ragged_barrier || acquired) {
      if (f1 != 0)
        d.bad(fmt::format("INV-G2/G7: P{} still stale after it was acquired or barriered", j));
    } else if (step.op == Op::flush_all) {
      if (f1 != f0 && f1 != 0)
        d.bad(fmt::format("P{} flush_gen {:+} -> {:+} in flush_all", j, f0, f1));
    } else if (f1 != f0) {
      d.bad(fmt::format("P{} flush_gen {:+} -> {:+} in a step that did not touch it", j, f0, f1));
    }
  }
  const bool acquired_stale =
      d.owner_step && step.proc >= 0 && d.before.procs[step.proc].flush_gen_delta == -2;
  if (step.op == Op::flush_idle && step.result_bool != acquired_stale)
    d.bad(fmt::format("flush_idle returned {} for a P that was {}", step.result_bool,
                      acquired_stale ? "stale" : "current"));
  // Expected flushes by kind. A cycle first finishes the previous one (its barrier flushes every
  // still-stale P); under eager it flushes every P in the pause; collect's own barrier then
  // flushes every P the bump made stale.
  std::uint64_t want_lazy = 0, want_barrier = 0, want_eager = 0;
  if (d.owner_step && step.op != Op::flush_idle && acquired_stale) want_lazy = 1;
  if (step.op == Op::flush_idle && acquired_stale) want_barrier = 1;
  if (step.op == Op::ragged_barrier || d.bump) want_barrier = stale_before;
  if (d.helped_proc >= 0) want_barrier += 1;
  if (step.op == Op::collect && d.lazy) want_barrier += setup_.procs;
  if (d.bump && !d.lazy) want_eager = setup_.procs;
  if (step.op != Op::flush_all) {
    if (s1.flushes_lazy - s0.flushes_lazy != want_lazy)
      d.bad(fmt::format("flushes_lazy grew by {}, want {}", s1.flushes_lazy - s0.flushes_lazy,
                        want_lazy));
    if (s1.flushes_barrier - s0.flushes_barrier != want_barrier)
      d.bad(fmt::format("flushes_barrier grew by {}, want {}",
                        s1.flushes_barrier - s0.flushes_barrier, want_barrier));
  }
  if (s1.flushes_eager - s0.flushes_eager != want_eager)
    d.bad(fmt::format("flushes_eager grew by {}, want {}", s1.flushes_eager - s0.flushes_eager,
                      want_eager));
}

}  // namespace spanheap::props
