// shim: the three operations every exported allocation function reduces to, shared by the C
// surface (malloc.cpp) and the C++ one (new_delete.cpp).
#pragma once

#include <cstddef>

#include "global_heap.hpp"

namespace spanheap::shim {

// `size` bytes aligned to `align` (a power of two), zeroed when `zero`; nullptr and errno = ENOMEM
// when the heap says no.
void* allocate(std::size_t size, std::size_t align, bool zero) noexcept;
// Frees anything the shim may have handed out; anything else is reported by the heap.
void release(void* p) noexcept;
// malloc_usable_size.
std::size_t usable_size(void* p) noexcept;

}  // namespace spanheap::shim
