// central: per span class, the spans that are not cached (Go's mcentral): partial and full lists,
// swept and unswept, under one lock per class. cache_span hands a cache a swept span with a free
// slot (sweeping what it picks); uncache_span takes one back (sweeping it if stale).
#pragma once

#include "sweep.hpp"
#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Returns a span of this class, swept (sweepgen == sg), in no list, with at least one free slot and
// its alloc_cache positioned; or nullptr when the page heap could not grow (caller reports).
// Charges proportional sweep first; sweeps unswept spans of this class it picks (on demand).
// A span from the swept partial list is collected first, counted in `by` (the caller's cache).
Span* cache_span(HeapState& heap, Cache& by, Central& central);

// Takes a span back from a cache (flush or refill). Stale (sg+1): stores sg-1 and sweeps it here
// (the only non-CAS entry into sg-1, by the cache's owner). Current (sg+3): stores sg and puts it
// on the swept partial or full list. Requires: the caller holds the P that cached it.
void uncache_span(HeapState& heap, Central& central, Span* span, bool keep_empty = false);

// Number of spans on the swept / unswept lists (world stopped: exact).
std::size_t central_count(Central& central, unsigned index);

}  // namespace spanheap::detail
