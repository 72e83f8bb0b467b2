// heap: the allocation and free paths behind the public facade (Go's malloc.go / mallocgc and
// the free side that explicit freeing adds): P acquisition, size classes, the cache fast path,
// large objects, the classification of bad frees, debug hooks, pacing.
#pragma once

#include <cstddef>

#include "heap_state.hpp"

namespace spanheap::detail {

// `proc` < 0: any P (the calling thread's affinity); otherwise exactly that P.
// At the memory limit with pacing on, a failed allocation runs one cycle and retries once.
// It does not clear: Heap::allocate_zeroed clears after the call (clear_if_dirty, heap.cpp).
void* heap_allocate(HeapState& heap, int proc, std::size_t size, std::size_t align,
                    bool retried = false);
void heap_free(HeapState& heap, int proc, void* ptr);
// Heap::allocate and Heap::free are defined in heap.cpp: heap_allocate(heap, -1, size, align) and
// heap_free(heap, -1, ptr) with a fast path for the common call, same results, same reports.

}  // namespace spanheap::detail
