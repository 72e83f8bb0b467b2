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

// `Heap` is HeapState or the fast paths' ProcHeap, converted only where it is read.
template <class Heap>
inline void poison_memory(const Heap& heap, void* p, std::size_t n) noexcept {
#if defined(SPANHEAP_ASAN)
  if (static_cast<const HeapState&>(heap).options.debug.poison_freed)
    ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)heap, (void)p, (void)n;
#endif
}

// True when the byte at p is poisoned, or when nothing is poisoned at all (no ASan, option off):
// for debug checks that memory the heap relies on being poisoned is.
inline bool poisoned_or_unchecked(const HeapState& heap, const void* p) noexcept {
#if defined(SPANHEAP_ASAN)
  return !heap.options.debug.poison_freed || __asan_address_is_poisoned(p) != 0;
#else
  (void)heap, (void)p;
  return true;
#endif
}

inline void unpoison_memory(const HeapState& heap, void* p, std::size_t n) noexcept {
#if defined(SPANHEAP_ASAN)
  if (heap.options.debug.poison_freed) ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)heap, (void)p, (void)n;
#endif
}

// OsMemory::keeps_poison (spanheap.hpp): in an ASan build, whether the OS layer hands committed
// memory over poisoned and takes it back poisoned. Whatever DebugOptions::poison_freed says: a
// heap that does not poison must still unpoison what it uses from such a layer.
inline bool os_keeps_poison(const HeapState& heap) noexcept {
#if defined(SPANHEAP_ASAN)
  return heap.os->keeps_poison();
#else
  (void)heap;
  return false;
#endif
}

// Memory committed by an OS layer that keeps poison, which the heap uses at once.
inline void unpoison_from_os(const HeapState& heap, void* p, std::size_t n) noexcept {
#if defined(SPANHEAP_ASAN)
  if (os_keeps_poison(heap)) ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)heap, (void)p, (void)n;
#endif
}

// Memory going back to an OS layer that keeps poison, which takes it only poisoned.
inline void poison_for_os(const HeapState& heap, void* p, std::size_t n) noexcept {
#if defined(SPANHEAP_ASAN)
  if (os_keeps_poison(heap)) ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)heap, (void)p, (void)n;
#endif
}

}  // namespace spanheap::detail
