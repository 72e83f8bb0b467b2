// page_heap: the page-run allocator over arenas (Go's mheap): first fit over size-segregated free
// lists, splitting and full coalescing, growth by reserving arenas and committing pages, and
// returning free runs that stayed idle for a while to the OS. Also owns the Span struct pool.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// How the page heap sweeps on demand before it grows (Go's mheap.reclaim): one span per call,
// false when none is left. The sweep frees spans into the page heap, so it sits above it and the
// caller passes it down (sweep_one); called only when no free run fits.
using Reclaim = bool (&)(HeapState& heap, SweepKind kind);

// Allocates a run of `npages` pages as a span (sweepgen sg, start/npages/arena/need_zero set, page
// map entries pointing at it, state still dead: span_init_* publishes it in_use), or nullptr when
// the OS or the memory limit says no (the caller reports). Before growing, sweeps on demand with
// `reclaim` (a bounded number of spans), taking a run that the sweep freed if one fits.
// The span starts at a multiple of `align` (a power of two ≥ page_size). `small_objects`: the
// span will hold small objects, and comes from an arena of huge pages when Options::huge_pages
// allows (page_kind); a large object's pages come from the other arenas, so that huge pages are
// faulted in whole only where small objects fill them.
Span* page_alloc(HeapState& heap, std::size_t npages, Reclaim reclaim,
                 std::size_t align = page_size, bool small_objects = false);

// Returns an in-use span to the free runs, coalescing with its neighbours, and publishes it at
// sg (T4) after its last write. Requires: the caller's sweep owns it (sweepgen == sg-1) and
// emptied it (alloc_count == 0), in no list.
void page_free(HeapState& heap, Span* span);

// Returns to the OS the free runs idle since `cycle - release_after` or earlier.
void page_scavenge(HeapState& heap, std::uint64_t cycle);

// Unreserves every arena and metadata chunk (heap destruction).
void page_heap_destroy(HeapState& heap);

// Iterates over every arena (world stopped or page heap lock held by the caller).
template <typename F>
void for_each_arena(PageHeap& pages, F&& f) NO_THREAD_SAFETY_ANALYSIS {
  for (Arena* a = pages.arenas; a != nullptr; a = a->next) f(*a);
}

// SpanList helpers (the caller holds the lock that guards the list).
void list_push_back(SpanList& list, Span* span) noexcept;
void list_remove(SpanList& list, Span* span) noexcept;
Span* list_pop_front(SpanList& list) noexcept;

}  // namespace spanheap::detail
