// sweeper: taking ownership of an unswept span (CAS sg-2 -> sg-1), sweeping it, sweep_one over all
// classes, proportional sweep charged to allocation, "sweep done", ensure-swept for free(), and the
// background sweeper threads (Go's mgcsweep.go).
#pragma once

#include <cstddef>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Ownership of a span being swept (Go's sweepLocked): only a holder may call sweep().
class SweepOwner {
 public:
  SweepOwner() = default;
  explicit SweepOwner(Span* span) noexcept : span_(span) {}
  SweepOwner(SweepOwner&& o) noexcept : span_(o.span_) { o.span_ = nullptr; }
  SweepOwner& operator=(SweepOwner&& o) noexcept {
    span_ = o.span_;
    o.span_ = nullptr;
    return *this;
  }
  SweepOwner(const SweepOwner&) = delete;
  SweepOwner& operator=(const SweepOwner&) = delete;
  explicit operator bool() const noexcept { return span_ != nullptr; }
  Span* span() const noexcept { return span_; }

 private:
  Span* span_ = nullptr;
};

// CAS sg-2 -> sg-1 on a span that sits on one of `central`'s unswept lists, and take it off the
// list. On success the caller owns the span and counts as an active sweeper until sweep()
// returns. Only listed spans at sg-2 can be taken: cached spans (sg+1, sg+3) are in no list, and
// list membership (checked under the lock) is what proves that a struct seen through a stale
// pointer was not freed and recycled meanwhile (INV-S6).
SweepOwner try_acquire(HeapState& heap, Central& central, Span* span) REQUIRES(central.mu);

// Sweeps an owned span: reclaims its pending frees, then either frees it to the page heap (no
// object left, unless `preserve`) or publishes it at sg on the right swept list (or, with
// `preserve`, in no list for the caller, cache_span, to cache). Returns true if it was freed.
// `stale` marks a flush-time sweep of a cached span (entered sg-1 by store, not by CAS).
// `keep_empty` keeps an emptied span on its central list instead of releasing it (sweeps done on
// behalf of free(), which must judge the pointer against the span's slots afterwards).
bool sweep(HeapState& heap, SweepOwner owner, SweepKind kind, bool preserve, bool stale = false,
           bool keep_empty = false);

// Sweeps one unswept span of any class; false when none is left.
bool sweep_one(HeapState& heap, SweepKind kind);

// Proportional sweep: before taking `bytes` of new span memory, sweep until the pages swept this
// cycle keep pace with bytes allocated (Go's deductSweepCredit). Returns spans swept.
unsigned deduct_sweep_credit(HeapState& heap, std::size_t bytes);

// Every span swept, no stale cache, no sweep in flight. Exact (see SweepState::active).
bool sweep_done(const HeapState& heap) noexcept;

// Makes `span` swept for this cycle before free() touches its object state (Go's ensureSwept):
// sweeps it if unswept, helps flush its stale owner if that P is idle, waits otherwise.
// Requires: the caller holds `self` (a P). Returns false if the span was freed or its struct
// recycled meanwhile, or if the caller's P had to be released and re-acquired so that a pending
// stop-the-world could proceed (the caller looks the pointer up again).
bool ensure_swept(HeapState& heap, Span* span, ProcState* self);

// Background sweeper threads. Requires: world.cycle_mu held (or the heap being destroyed).
// Starts threads until there are sweepers_wanted; a thread that cannot start is an out_of_memory
// report and lowers sweepers_wanted (the heap sweeps without it).
void start_background_sweepers(HeapState& heap);
void stop_background_sweepers(HeapState& heap);
// In a fork() child: drops the handles of the parent's sweepers, which do not exist here; the
// next wake starts the child's own.
void forget_background_sweepers(HeapState& heap);
// Wakes parked background sweepers (a cycle left work), starting any that are missing.
void wake_background_sweepers(HeapState& heap);

}  // namespace spanheap::detail
