// page_map: address -> arena -> span, lock-free for readers (Go's heapArena.spans and
// spanOf/findObject). A process-wide registry maps 1 MiB granules to arenas, so any pointer can be
// classified: foreign, another heap's, or this heap's (free pages, span tail, slot, object).
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstdint>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Registry of every live arena in the process. Writers hold the registry lock; readers are
// lock-free (two acquire loads). Interior nodes are never freed, so a reader never sees freed
// memory; an arena is removed before it is unreserved.
void registry_insert(Arena* arena);
void registry_remove(Arena* arena);
Arena* registry_lookup(std::uintptr_t addr) noexcept;

// The span whose pages contain `addr` (in use or free), or nullptr when `addr` is not in a
// committed page of one of `heap`'s arenas. `arena_out` receives the arena when it is this heap's.
Span* span_of(const HeapState& heap, std::uintptr_t addr, Arena** arena_out = nullptr) noexcept;

// Sets the page-table entries of [span.start, span.start + npages) to `span`.
// Requires: page heap lock.
void page_map_set(Arena& arena, std::uintptr_t start, std::size_t npages, Span* span) noexcept;

// Classifies `p` for `heap` (Heap::find_object). Racy by nature when other threads run; exact
// when the world is stopped or the caller holds a P and the span is swept.
PointerInfo find_object(const HeapState& heap, const void* p) noexcept;

}  // namespace spanheap::detail
