// os_mem: reserve / commit / release / unreserve address space (Go's mem_linux.go). The real
// provider lives here; the fake with failure injection is spanheap::testing::FakeOsMemory.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>

namespace spanheap::detail {

// mmap(PROT_NONE) reservations aligned by over-reserving and trimming; commit = mprotect RW;
// release = madvise(MADV_DONTNEED) (pages read back as zero); unreserve = munmap; huge pages =
// madvise(MADV_HUGEPAGE) (ignored where the kernel has no transparent huge pages).
class SystemMemory final : public OsMemory {
 public:
  void* reserve(std::size_t size, std::size_t align) override;
  bool commit(void* p, std::size_t size) override;
  void release(void* p, std::size_t size) override;
  void unreserve(void* p, std::size_t size) override;
  void advise_huge_pages(void* p, std::size_t size) override;
};

}  // namespace spanheap::detail
