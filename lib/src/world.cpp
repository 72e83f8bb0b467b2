// world: see world.hpp.
#include "world.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cache.hpp"
#include "central.hpp"
#include "heap_state.hpp"
#include "pacing.hpp"
#include "page_heap.hpp"
#include "proc.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "stats.hpp"
#include "sweep.hpp"
#include "sweeper.hpp"
#include "validate.hpp"

namespace spanheap::detail {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

namespace {

// The stop's first pass: whether any of `slots` status words, `stride` apart, is not idle. Four
// independent ORs (status_slots is a multiple of four; the words past nslots stay idle) over a
// pointer that steps by a constant: at 64 Ps with binding on, 68 words in 5 lines at about three
// instructions a word, where the stride read from the heap made it four.
template <unsigned stride>
bool any_status_taken(const std::atomic<ProcStatus>* w, unsigned slots) noexcept {
  static_assert(static_cast<std::uint32_t>(ProcStatus::idle) == 0, "the pass ORs the words");
  std::uint32_t any0 = 0, any1 = 0, any2 = 0, any3 = 0;
  for (const std::atomic<ProcStatus>* const end = w + slots * stride; w != end; w += 4 * stride) {
    any0 |= static_cast<std::uint32_t>(w[0].load(std::memory_order_seq_cst));
    any1 |= static_cast<std::uint32_t>(w[stride].load(std::memory_order_seq_cst));
    any2 |= static_cast<std::uint32_t>(w[2 * stride].load(std::memory_order_seq_cst));
    any3 |= static_cast<std::uint32_t>(w[3 * stride].load(std::memory_order_seq_cst));
  }
  return (any0 | any1 | any2 | any3) != 0;
}

}  // namespace

WorldStopped stop_the_world(HeapState& heap) {
  const std::uint64_t start = now_ns();
  // The stopper's half of the handshake with keep_taken (proc.hpp): publish the stop, then read
  // every P. An idle P needs no write: whoever takes it from now on reads `stopped` after its CAS
  // and gives it back untouched, so the pause pays one read a P, not a locked instruction a P.
  // Wait only for those inside a heap call. Bound Ps are revoked together (one barrier for all),
  // then each waits for its binder to leave.
  heap.world.stopped.store(true, std::memory_order_seq_cst);
  // The common stop finds every P idle (idle is 0): one pass of independent loads shows it. Not
  // when a test observes each idle P read (the loop below calls its protocol point).
  constexpr auto found_idle = static_cast<unsigned>(ProtocolPoint::stop_found_idle_proc);
  if (SPANHEAP_LIKELY((heap.protocol_points >> found_idle & 1u) == 0)) {
    const bool any_taken =
        heap.status_stride == 1
            ? any_status_taken<1>(heap.status_words(), heap.status_slots)
            : any_status_taken<ProcStatusLine::words>(heap.status_words(), heap.status_slots);
    if (!any_taken) return WorldStopped(start);
  }
  ProcState* bound[max_procs];
  unsigned nbound = 0;
  for (unsigned i = 0; i < heap.nslots; i++) {
    // The status words alone (ProcStatusLine): an idle P's ProcState is not touched.
    const std::atomic<ProcStatus>& status = heap.status_word(i);
    unsigned spins = 0;
    for (;;) {
      const ProcStatus seen = status.load(std::memory_order_seq_cst);
      if (seen == ProcStatus::idle) {
        // Another thread may take the P right after this read: it reads `stopped` after its CAS,
        // so it gives the P back without using it.
        protocol_point(heap, ProtocolPoint::stop_found_idle_proc);
        break;
      }
      if (seen == ProcStatus::bound && begin_revoke(heap.proc(i))) {
        bound[nbound++] = &heap.proc(i);
        break;
      }
      // Running (a call, or a taker about to give it back) or revoking (another revoker's take).
      if (++spins > 32) std::this_thread::yield();
    }
  }
  if (nbound != 0) finish_revokes(heap, bound, nbound, ProcStatus::idle);
  return WorldStopped(start);
}

void start_the_world(HeapState& heap, WorldStopped stopped) {
  (void)stopped;
  // Release: a taker that reads false here sees everything the pause wrote (the Ps' caches too).
  heap.world.stopped.store(false, std::memory_order_seq_cst);
  heap.world.stopped.notify_all();  // the takers sleeping in acquire_among
}

namespace {

void record_pause(HeapState& heap, std::uint64_t ns) {
  HeapCounters& c = heap.counters;
  c.pause_last_ns.store(ns, std::memory_order_relaxed);
  c.pause_total_ns.fetch_add(ns, std::memory_order_relaxed);
  if (ns > c.pause_max_ns.load(std::memory_order_relaxed))
    c.pause_max_ns.store(ns, std::memory_order_relaxed);
  std::uint64_t us = ns / 1000;
  unsigned bucket = 0;
  while (us != 0 && bucket + 1 < pause_buckets) {
    us >>= 1;
    bucket++;
  }
  c.pause_histogram[bucket].fetch_add(1, std::memory_order_relaxed);
}

// Pacing (DESIGN §4): the plan of pacing.hpp for this bump, published for the allocation paths.
// `survivors`: what survives this cycle, bytes allocated and not freed (freed ones are reclaimed
// by this cycle's sweep), summed over the Ps just before the stop.
void set_pacing(HeapState& heap, std::uint64_t survivors, std::uint64_t pages_to_sweep) {
  const PacingPlan plan =
      plan_pacing(survivors, heap.options.gc_percent, heap.options.memory_limit,
                  heap.pages.committed_bytes.load(std::memory_order_relaxed), pages_to_sweep);
  const std::uint64_t trigger = plan.trigger;
  heap.pacer.live_at_bump.store(survivors, std::memory_order_relaxed);
  heap.pacer.trigger.store(trigger, std::memory_order_relaxed);
  heap.pacer.allocated.store(0, std::memory_order_relaxed);
  heap.pacer.requested.store(false, std::memory_order_relaxed);
  // Proportional sweep: all pages swept by the time 90% of the distance to the trigger is
  // allocated (Go's sweepPagesPerByte, with its 1 MiB margin scaled to small triggers).
  SweepState& ss = heap.sweep;
  ss.pages_swept.store(0, std::memory_order_relaxed);
  ss.bytes_allocated.store(0, std::memory_order_relaxed);
  ss.pages_to_sweep.store(pages_to_sweep, std::memory_order_relaxed);
  ss.pages_per_byte.store(plan.pages_per_byte, std::memory_order_relaxed);
}

struct UnsweptCount {
  std::int64_t spans;
  std::uint64_t pages;
};

// After the bump every central list that was swept is unswept: count them (C20: the new swept
// lists must be empty). No central lock is taken: with the world stopped nobody else can hold
// one, and this runs inside the pause.
UnsweptCount count_unswept(HeapState& heap, const WorldStopped&,
                           std::uint32_t next) NO_THREAD_SAFETY_ANALYSIS {
  UnsweptCount n{0, 0};
  const unsigned u = unswept_index(next);
  const unsigned sw = swept_index(next);
  for (unsigned c = 0; c < num_size_classes(); c++) {
    Central& central = heap.central[c];
    SPANHEAP_CHECK(&heap, central.partial[sw].count == 0 && central.full[sw].count == 0,
                   "non-empty swept list at the bump (C20)");
    n.spans += static_cast<std::int64_t>(central.partial[u].count + central.full[u].count);
    n.pages += central.partial[u].pages + central.full[u].pages;
  }
  return n;
}

// The whole of a cycle but the ragged barrier. Requires: world.cycle_mu held.
void begin_cycle_locked(HeapState& heap) REQUIRES(heap.world.cycle_mu) {
  // Sweep termination, concurrently: the previous cycle's barrier and sweep must be complete
  // before the next bump (INV-G1, INV-G3). Done before stopping the world to keep the pause short.
  ragged_barrier_locked(heap);
  {
    ProcState& slot = acquire_sweep_slot(heap);
    while (sweep_one(heap, SweepKind::termination)) {
    }
    release_proc(slot);
  }
  // Summed over the Ps before the stop, so that the pause does not grow with the number of Ps.
  // Bytes allocated or freed between this read and the stop count in neither this cycle's
  // survivors nor the next one's allocations (pacer.allocated restarts at the bump): the trigger
  // moves by what a few calls allocate. Exact when no other thread runs.
  const std::uint64_t survivors = surviving_bytes(heap);
  WorldStopped stopped = stop_the_world(heap);
  // Anything a racing mutator left (it could not: nothing becomes unswept mid-cycle, but frees
  // may have swept spans meanwhile) is finished here, with the world stopped.
  while (sweep_one(heap, SweepKind::termination)) {
  }
  const std::uint32_t sg = heap.sg();
  // INV-G1 / C10: all spans swept or current-cached, all Ps flushed, no sweeper in flight: the
  // same sweep_done() the tests hold to Go #45315/#46500, plus each P's flush_gen.
  SPANHEAP_CHECK(&heap, sweep_done(heap),
                 "sweep not done at the bump: unswept spans, a sweeper active or a p mcache not "
                 "flushed (INV-G1, C10)");
  // Each P's own flush_gen, besides the count sweep_done read: debug tier, a read a P that the
  // pause would otherwise grow by.
  if (heap.debug_checks()) {
    for (unsigned i = 0; i < heap.nprocs; i++) {
      SPANHEAP_CHECK(&heap, heap.proc(i).cache.flush_gen.load(std::memory_order_acquire) == sg,
                     "p mcache not flushed (C10)");
    }
  }
  if (heap.expensive_checks()) check_cycle_preconditions(heap, stopped);
  if (heap.options.flush == FlushPolicy::eager) {
    for (unsigned i = 0; i < heap.nprocs; i++) cache_flush(heap, heap.proc(i), FlushKind::eager);
  }
  // T7: sweepgen += 2. Swept lists become unswept; sg+3 cached spans become sg+1 (stale).
  const std::uint32_t next = sg + 2;
  heap.sweepgen.store(next, std::memory_order_release);
  const auto [unswept, pages] = count_unswept(heap, stopped, next);
  heap.sweep.unswept.store(unswept, std::memory_order_seq_cst);
  heap.sweep.cursor.store(0, std::memory_order_release);
  if (heap.options.flush == FlushPolicy::eager) {
    for (unsigned i = 0; i < heap.nprocs; i++)
      heap.proc(i).cache.flush_gen.store(next, std::memory_order_release);
    heap.sweep.stale_procs.store(0, std::memory_order_seq_cst);
  } else {
    heap.sweep.stale_procs.store(heap.nprocs, std::memory_order_seq_cst);
  }
  const std::uint64_t cycle = heap.counters.cycles.fetch_add(1, std::memory_order_relaxed) + 1;
  set_pacing(heap, survivors, pages);
  const std::uint64_t pause = now_ns() - stopped.start_ns();
  record_pause(heap, pause);
  start_the_world(heap, std::move(stopped));

  page_scavenge(heap, cycle);
  wake_background_sweepers(heap);
  if (heap.trace) {
    const Stats s = collect_stats(heap);
    fmt::print(stderr,
               "spanheap: cycle {} sg={} pause={:.1f}us procs={} flush={} live={}B objects={} "
               "spans_to_sweep={} pages_to_sweep={} trigger={}B mapped={}B released={}B\n",
               cycle, next, static_cast<double>(pause) / 1000.0, heap.nprocs,
               heap.options.flush == FlushPolicy::lazy ? "lazy" : "eager", s.live_bytes,
               s.live_objects, unswept, pages, s.next_trigger, s.mapped_bytes, s.released_bytes);
  }
}

}  // namespace

void ragged_barrier_locked(HeapState& heap) {
  // Every P flushed after the restart: idle ones by us, busy ones by themselves at acquire (they
  // acquired after the restart, so they flush before allocating); wait for those.
  for (unsigned i = 0; i < heap.nprocs; i++) {
    ProcState& p = heap.proc(i);
    unsigned spins = 0;
    while (cache_is_stale(heap.sg(), p.cache)) {
      if (try_take_idle(heap, p)) {
        if (cache_is_stale(heap.sg(), p.cache)) cache_flush(heap, p, FlushKind::barrier);
        release_proc(p);
        break;
      }
      if (++spins > 32) std::this_thread::yield();
    }
  }
}

void begin_cycle(HeapState& heap) {
  LockGuard g(heap.world.cycle_mu);
  begin_cycle_locked(heap);
}

bool flush_idle(HeapState& heap, unsigned i) {
  LockGuard g(heap.world.cycle_mu);
  ProcState& p = heap.proc(i);
  if (!cache_is_stale(heap.sg(), p.cache) || !try_take_idle(heap, p)) return false;
  bool flushed = false;
  if (cache_is_stale(heap.sg(), p.cache)) {
    cache_flush(heap, p, FlushKind::barrier);
    flushed = true;
  }
  release_proc(p);
  return flushed;
}

void ragged_barrier(HeapState& heap) {
  LockGuard g(heap.world.cycle_mu);
  ragged_barrier_locked(heap);
}

void collect(HeapState& heap) {
  {
    LockGuard g(heap.world.cycle_mu);
    begin_cycle_locked(heap);
    ragged_barrier_locked(heap);
  }
  if (heap.options.debug.verify_each_cycle) {
    VerifyResult r = verify_heap(heap);
    for (const Violation& v : r.violations)
      report(&heap, ErrorKind::corruption, nullptr, "verify: {}: {}", v.invariant, v.message);
  }
}

void flush_all(HeapState& heap) {
  LockGuard g(heap.world.cycle_mu);
  WorldStopped stopped = stop_the_world(heap);
  for (unsigned i = 0; i < heap.nprocs; i++) cache_flush(heap, heap.proc(i), FlushKind::forced);
  start_the_world(heap, std::move(stopped));
}

VerifyResult verify_heap(HeapState& heap) {
  VerifyResult result;
  LockGuard g(heap.world.cycle_mu);
  WorldStopped stopped = stop_the_world(heap);
  validate_stopped(heap, stopped, result.violations);
  start_the_world(heap, std::move(stopped));
  return result;
}

void maybe_collect(HeapState& heap) {
  if (!heap.pacer.requested.exchange(false, std::memory_order_acq_rel)) return;
  if (!heap.world.cycle_mu.try_lock()) return;  // a cycle is already running
  begin_cycle_locked(heap);
  ragged_barrier_locked(heap);
  heap.world.cycle_mu.unlock();
  if (heap.options.debug.verify_each_cycle) {
    VerifyResult r = verify_heap(heap);
    for (const Violation& v : r.violations)
      report(&heap, ErrorKind::corruption, nullptr, "verify: {}: {}", v.invariant, v.message);
  }
}

}  // namespace spanheap::detail
