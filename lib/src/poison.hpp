// poison: ASan poisoning of memory that holds no live object (DebugOptions::poison_freed), as
// cppgc and mimalloc do, so any access to a free slot or free page is caught by ASan. No-ops in
// builds without ASan or when the option is off.
#pragma once

#include <cstddef>

#include "heap_state.hpp"

#if defined(SPANHEAP_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace spanheap::detail {

inline void poison_memory(const HeapState& heap, void* p, std::size_t n) noexcept {
#if defined(SPANHEAP_ASAN)
  if (heap.options.debug.poison_freed) ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)heap, (void)p, (void)n;
#endif
}

inline void unpoison_memory(const HeapState& heap, void* p, std::size_t n) noexcept {
#if defined(SPANHEAP_ASAN)
  if (heap.options.debug.poison_freed) ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)heap, (void)p, (void)n;
#endif
}

}  // namespace spanheap::detail
