// new_delete: every replaceable operator new and delete ([new.delete]: single and array; plain,
// nothrow, aligned, sized) over the process-wide heap. See docs/malloc.md.
#include <dlfcn.h>

#include <new>

#include "shim.hpp"

namespace {

using spanheap::shim::allocate;
using spanheap::shim::release;

constexpr std::size_t default_new_align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

// The program's C++ runtime, for what operator new must do when the heap says no: call the
// new-handler the program set, throw the bad_alloc the program catches. libspanheap_malloc.so
// carries a C++ runtime of its own (linked statically, its symbols hidden: docs/malloc.md
// "Start-up cost"), whose new-handler is not the program's and whose exceptions would reach the
// program's catch as another runtime's objects; so the program's functions are looked up by name
// (the hidden copy is not found). A program that links the override objects has one runtime, the
// one these are compiled against: when its functions are not exported, that one is the program's.
struct Runtime {
  std::new_handler (*get_new_handler)() = &std::get_new_handler;
  void (*throw_bad_alloc)() = nullptr;  // std::__throw_bad_alloc, [[noreturn]]
  // The runtime's own nothrow operator new (aligned or not): it retries through malloc and
  // catches what a handler throws, in the runtime that threw it.
  void* (*nothrow_new)(std::size_t, const std::nothrow_t&) noexcept = nullptr;
  void* (*nothrow_new_aligned)(std::size_t, std::align_val_t,
                               const std::nothrow_t&) noexcept = nullptr;
};

template <class F>
void find(F& f, void* handle, const char* name) {
  if (void* sym = dlsym(handle, name)) f = reinterpret_cast<F>(sym);
}

[[gnu::cold]] const Runtime& runtime() noexcept {
  static const Runtime r = [] {
    Runtime found;
    find(found.get_new_handler, RTLD_DEFAULT, "_ZSt15get_new_handlerv");
    find(found.throw_bad_alloc, RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");
    // Past this object: the runtime's definitions, not the ones this file exports.
    find(found.nothrow_new, RTLD_NEXT, "_ZnwmRKSt9nothrow_t");
    find(found.nothrow_new_aligned, RTLD_NEXT, "_ZnwmSt11align_val_tRKSt9nothrow_t");
    return found;
  }();
  return r;
}

// [new.delete.single]: loop over the new-handler until it gives up by throwing or is absent.
// Nothing here catches or cleans up, so the program's exception unwinds through this frame with
// no personality routine of this object's runtime involved.
void* new_or_throw(std::size_t size, std::size_t align) {
  for (;;) {
    if (void* p = allocate(size, align, false)) return p;
    const Runtime& rt = runtime();
    std::new_handler handler = rt.get_new_handler();
    if (handler == nullptr) {
      if (rt.throw_bad_alloc != nullptr) rt.throw_bad_alloc();
      throw std::bad_alloc();  // this object's runtime is the program's (see Runtime)
    }
    handler();
  }
}

// The nothrow forms: with no handler set, nullptr; with one, the runtime's own nothrow operator
// new, which calls it and catches what it throws (a catch here would take the program's exception
// into this object's runtime).
void* new_or_null(std::size_t size, std::size_t align) noexcept {
  if (void* p = allocate(size, align, false)) return p;
  const Runtime& rt = runtime();
  if (rt.get_new_handler() == nullptr) return nullptr;
  if (align == default_new_align && rt.nothrow_new != nullptr)
    return rt.nothrow_new(size, std::nothrow);
  if (align != default_new_align && rt.nothrow_new_aligned != nullptr)
    return rt.nothrow_new_aligned(size, std::align_val_t{align}, std::nothrow);
  try {  // this object's runtime is the program's (see Runtime)
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
