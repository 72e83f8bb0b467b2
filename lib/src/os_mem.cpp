// os_mem: see os_mem.hpp.
#include "os_mem.hpp"

#include <sys/mman.h>

#include <cstdint>

namespace spanheap::detail {

void* SystemMemory::reserve(std::size_t size, std::size_t align) {
  if (align < page_size) align = page_size;
  const std::size_t span = size + align;
  if (span < size) return nullptr;
  void* raw = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (base + align - 1) & ~(std::uintptr_t{align} - 1);
  if (aligned > base) munmap(raw, aligned - base);
  const std::uintptr_t end = base + span;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  return reinterpret_cast<void*>(aligned);
}

bool SystemMemory::commit(void* p, std::size_t size) {
  return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void SystemMemory::release(void* p, std::size_t size) { madvise(p, size, MADV_DONTNEED); }

void SystemMemory::unreserve(void* p, std::size_t size) { munmap(p, size); }

void SystemMemory::advise_huge_pages(void* p, std::size_t size) {
#ifdef MADV_HUGEPAGE
  // EINVAL without transparent huge pages in the kernel: the pages stay small, nothing else.
  (void)madvise(p, size, MADV_HUGEPAGE);
#else
  (void)p;
  (void)size;
#endif
}

}  // namespace spanheap::detail

namespace spanheap {

OsMemory& system_memory() noexcept {
  static detail::SystemMemory memory;
  return memory;
}

}  // namespace spanheap
