// malloc: the C allocation surface (malloc, free, calloc, realloc, reallocarray, posix_memalign,
// aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size) over the process-wide heap, with
// glibc's answers at the edges (errno, realloc(p, 0), alignment rules). See docs/malloc.md.
#include "shim.hpp"

#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace spanheap::shim {

void* allocate_while_building(std::size_t size, std::size_t align, bool zero) noexcept {
  Heap* h = global_heap();
  void* p = h == nullptr ? bootstrap_alloc(size, align)  // .bss: already zero
                         : (zero ? h->allocate_zeroed(size, align) : h->allocate(size, align));
  if (p == nullptr) errno = ENOMEM;
  return p;
}

void* allocation_failed() noexcept {
  errno = ENOMEM;
  return nullptr;
}

void release_foreign(void* p) noexcept {
  if (bootstrap_owns(p)) return;
  if (next_allocator_owns(p)) return next_free(p);
  if (Heap* h = global_heap()) h->free(p);
}

std::size_t usable_size(void* p) noexcept {
  if (p == nullptr) return 0;
  if (bootstrap_owns(p)) return bootstrap_size(p);
  if (next_allocator_owns(p)) return next_usable_size(p);
  Heap* h = global_heap();
  const PointerInfo info = h->find_object(p);
  if (info.kind == PointerKind::object_start && !info.pending_free) return info.size;
  return h->usable_size(p);  // reports what the pointer is instead (misuse), returns 0
}

namespace {

// glibc's malloc answers every size with 16-byte alignment; an object of 8 bytes or fewer cannot
// hold a type that needs more than 8, and the 8-byte class wastes nothing on it.
std::size_t default_align(std::size_t size) { return size <= 8 ? 8 : 16; }

bool pow2(std::size_t a) { return a != 0 && (a & (a - 1)) == 0; }

void* reallocate(void* p, std::size_t size) noexcept {
  if (p == nullptr) return allocate(size, default_align(size), false);
  if (size == 0) {  // glibc frees and returns NULL
    release(p);
    return nullptr;
  }
  std::size_t old = 0;
  if (bootstrap_owns(p)) {
    old = bootstrap_size(p);
  } else if (next_allocator_owns(p)) {
    old = next_usable_size(p);  // moved into spanheap below, so every later call is ours
  } else {
    Heap* h = global_heap();
    const PointerInfo info = h->find_object(p);
    if (info.kind != PointerKind::object_start || info.pending_free) {
      h->free(p);  // reports exactly what the pointer is (double, interior, invalid, foreign)
      errno = EINVAL;
      return nullptr;
    }
    old = info.size;
    // In place while the object still fits and is not more than twice what is asked for
    // (mimalloc's rule): shrinking to a much smaller class moves, so a large block is not pinned
    // by a small remainder.
    if (size <= old && size >= old / 2) return p;
  }
  void* q = allocate(size, default_align(size), false);
  if (q == nullptr) return nullptr;  // p stays valid, as C requires
  std::memcpy(q, p, old < size ? old : size);
  release(p);
  return q;
}

void* aligned(std::size_t align, std::size_t size) noexcept {
  return allocate(size, align < default_align(size) ? default_align(size) : align, false);
}

std::size_t os_page() {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

}  // namespace
}  // namespace spanheap::shim

using namespace spanheap::shim;

#define SPANHEAP_EXPORT extern "C" [[gnu::visibility("default")]]

SPANHEAP_EXPORT void* malloc(std::size_t size) noexcept {
  return allocate(size, default_align(size), false);
}

SPANHEAP_EXPORT void free(void* p) noexcept { release(p); }

SPANHEAP_EXPORT void* calloc(std::size_t n, std::size_t size) noexcept {
  std::size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return allocate(total, default_align(total), true);
}

SPANHEAP_EXPORT void* realloc(void* p, std::size_t size) noexcept { return reallocate(p, size); }

SPANHEAP_EXPORT void* reallocarray(void* p, std::size_t n, std::size_t size) noexcept {
  std::size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return reallocate(p, total);
}

SPANHEAP_EXPORT int posix_memalign(void** out, std::size_t align, std::size_t size) noexcept {
  if (!pow2(align) || align % sizeof(void*) != 0) return EINVAL;
  const int saved = errno;  // posix_memalign reports through its result, errno stays as it was
  void* p = aligned(align, size);
  errno = saved;
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

SPANHEAP_EXPORT void* aligned_alloc(std::size_t align, std::size_t size) noexcept {
  if (!pow2(align)) {  // glibc ≥ 2.38 rejects these too
    errno = EINVAL;
    return nullptr;
  }
  return aligned(align, size);
}

SPANHEAP_EXPORT void* memalign(std::size_t align, std::size_t size) noexcept {
  if (align > (std::size_t{1} << 62)) {
    errno = EINVAL;
    return nullptr;
  }
  // glibc rounds an alignment that is not a power of two up to the next one.
  std::size_t a = 1;
  while (a < align) a <<= 1;
  return aligned(a, size);
}

SPANHEAP_EXPORT void* valloc(std::size_t size) noexcept { return aligned(os_page(), size); }

SPANHEAP_EXPORT void* pvalloc(std::size_t size) noexcept {
  const std::size_t page = os_page();
  if (size > SIZE_MAX - page) {
    errno = ENOMEM;
    return nullptr;
  }
  return aligned(page, (size + page - 1) & ~(page - 1));
}

SPANHEAP_EXPORT std::size_t malloc_usable_size(void* p) noexcept { return usable_size(p); }
