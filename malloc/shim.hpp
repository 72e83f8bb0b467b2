// shim: the three operations every exported allocation function reduces to, shared by the C
// surface (malloc.cpp) and the C++ one (new_delete.cpp).
#pragma once

#include <cstddef>

#include "global_heap.hpp"

namespace spanheap::shim {

// The cold ends of the two below, out of line so that the common case stays a few instructions
// around the heap's call: the building thread's allocations (bootstrap arena), a failed one
// (errno = ENOMEM, nullptr), and frees of memory the heap does not own.
void* allocate_while_building(std::size_t size, std::size_t align, bool zero) noexcept;
[[gnu::cold]] void* allocation_failed() noexcept;
void release_foreign(void* p) noexcept;

// `size` bytes aligned to `align` (a power of two), zeroed when `zero`; nullptr and errno = ENOMEM
// when the heap says no.
inline void* allocate(std::size_t size, std::size_t align, bool zero) noexcept {
  Heap* h = ready_heap.load(std::memory_order_acquire);
  if (h == nullptr) [[unlikely]]
    return allocate_while_building(size, align, zero);
  void* p = zero ? h->allocate_zeroed(size, align) : h->allocate(size, align);
  if (p == nullptr) [[unlikely]]
    return allocation_failed();
  return p;
}

// Frees anything the shim may have handed out; anything else is reported by the heap.
inline void release(void* p) noexcept {
  if (p == nullptr) return;
  Heap* h = ready_heap.load(std::memory_order_acquire);
  // Only the building thread sees nullptr, and it frees only what it got from the bootstrap arena.
  if (h == nullptr || bootstrap_owns(p) || next_allocator_owns(p)) [[unlikely]]
    return release_foreign(p);
  h->free(p);  // a pointer no heap owns is a foreign_free report
}

// malloc_usable_size.
std::size_t usable_size(void* p) noexcept;

}  // namespace spanheap::shim
