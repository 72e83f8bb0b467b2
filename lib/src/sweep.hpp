// sweep: the span-level sweep (Go's mspan.sweep and sweepLocker): taking ownership of an unswept
// span (CAS sg-2 -> sg-1), sweeping it, and putting it where it belongs. The sweep driver
// (sweeper.hpp) decides which spans to sweep and when.
#pragma once

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

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

}  // namespace spanheap::detail
