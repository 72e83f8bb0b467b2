// sweep: the sweep itself, which needs no P (Go's mgcsweep.go below its threads): taking ownership
// of an unswept span (CAS sg-2 -> sg-1, Go's sweepLocker), sweeping it (mspan.sweep), putting it
// where it belongs (central's swept lists or the page heap), finding the next unswept span
// (sweepone) and charging allocation for sweeping (deductSweepCredit). What needs a P or a thread
// (free()'s ensure_swept, the background sweepers) is in sweeper.hpp.
#pragma once

#include <cstddef>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Which pair of central's lists holds the spans swept (sweepgen sg) and the spans still unswept
// (sg-2) this cycle: the bump swaps the roles of the two pairs without moving a span (Go's
// mcentral.partialSwept / partialUnswept).
inline unsigned swept_index(std::uint32_t sg) noexcept { return (sg / 2) % 2; }
inline unsigned unswept_index(std::uint32_t sg) noexcept { return 1 - (sg / 2) % 2; }

// Ownership of a span being swept (Go's sweepLocked): only a holder may sweep the
// span (the sweep_* functions below).
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
// list. On success the caller owns the span and counts as an active sweeper until its sweep
// returns. Only listed spans at sg-2 can be taken: cached spans (sg+1, sg+3) are in no list, and
// list membership (checked under the lock) is what proves that a struct seen through a stale
// pointer was not freed and recycled meanwhile (INV-S6).
SweepOwner try_acquire(HeapState& heap, Central& central, Span* span) REQUIRES(central.mu);

// Sweeping an owned span reclaims its pending frees, then frees the span to the page heap (no
// object left) or publishes it at sg on the swept list of its class that matches its fill.
// Each returns true if the span was freed.
bool sweep_span(HeapState& heap, SweepOwner owner, SweepKind kind);
// For cache_span (an on-demand sweep of a span it picked): the span is never freed and stays in
// no list, published at sg for the caller to cache.
void sweep_for_cache(HeapState& heap, SweepOwner owner);
// On behalf of free(): an emptied small span stays on its central list instead of being released,
// because free() judges the pointer against the span's slots afterwards (the next cycle frees it).
bool sweep_for_free(HeapState& heap, SweepOwner owner);
// A flush-time sweep of a stale cached span, which entered sg-1 by store, not by CAS, and so is
// not counted active. `keep_empty` as for sweep_for_free (a flush done on behalf of free()).
bool sweep_stale(HeapState& heap, SweepOwner owner, bool keep_empty);

// Puts a swept span on the swept list matching its fill, then publishes sweepgen = sg: where a
// sweep that keeps its span leaves it, and where central and the large allocator put a span
// coming back swept. Requires: central.mu held; span in no list.
void central_put_swept(HeapState& heap, Central& central, Span* span) REQUIRES(central.mu);

// Takes the first unswept span of the partial (or full) list, owned (CAS sg-2 -> sg-1) and
// registered as an active sweep; an empty owner when the list is empty.
SweepOwner central_take_unswept(HeapState& heap, Central& central, bool partial)
    REQUIRES(central.mu);

// Sweeps one unswept span of any class; false when none is left.
bool sweep_one(HeapState& heap, SweepKind kind);

// Proportional sweep: before taking `bytes` of new span memory, sweep until the pages swept this
// cycle keep pace with bytes allocated (Go's deductSweepCredit). Returns spans swept.
unsigned deduct_sweep_credit(HeapState& heap, std::size_t bytes);

}  // namespace spanheap::detail
