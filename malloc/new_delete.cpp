// new_delete: every replaceable operator new and delete ([new.delete]: single and array; plain,
// nothrow, aligned, sized) over the process-wide heap. See docs/malloc.md.
#include <new>

#include "shim.hpp"

namespace {

using spanheap::shim::allocate;
using spanheap::shim::release;

constexpr std::size_t default_new_align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

// [new.delete.single]: loop over the new-handler until it gives up by throwing or is absent.
void* new_or_throw(std::size_t size, std::size_t align) {
  for (;;) {
    if (void* p = allocate(size, align, false)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* new_or_null(std::size_t size, std::size_t align) noexcept {
  try {
    return new_or_throw(size, align);
  } catch (...) {
    return nullptr;
  }
}

std::size_t align_of(std::align_val_t a) { return static_cast<std::size_t>(a); }

}  // namespace

#define SPANHEAP_EXPORT [[gnu::visibility("default")]]

SPANHEAP_EXPORT void* operator new(std::size_t size) {
  return new_or_throw(size, default_new_align);
}
SPANHEAP_EXPORT void* operator new[](std::size_t size) {
  return new_or_throw(size, default_new_align);
}
SPANHEAP_EXPORT void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return new_or_null(size, default_new_align);
}
SPANHEAP_EXPORT void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return new_or_null(size, default_new_align);
}
SPANHEAP_EXPORT void* operator new(std::size_t size, std::align_val_t a) {
  return new_or_throw(size, align_of(a));
}
SPANHEAP_EXPORT void* operator new[](std::size_t size, std::align_val_t a) {
  return new_or_throw(size, align_of(a));
}
SPANHEAP_EXPORT void* operator new(std::size_t size, std::align_val_t a,
                                   const std::nothrow_t&) noexcept {
  return new_or_null(size, align_of(a));
}
SPANHEAP_EXPORT void* operator new[](std::size_t size, std::align_val_t a,
                                     const std::nothrow_t&) noexcept {
  return new_or_null(size, align_of(a));
}

// Every delete form frees the same way: the heap knows each object's size and alignment.
SPANHEAP_EXPORT void operator delete(void* p) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete[](void* p) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete(void* p, std::size_t) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete[](void* p, std::size_t) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete(void* p, std::align_val_t) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
SPANHEAP_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
SPANHEAP_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  release(p);
}
SPANHEAP_EXPORT void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
SPANHEAP_EXPORT void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  release(p);
}
