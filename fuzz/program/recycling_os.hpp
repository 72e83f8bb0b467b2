// RecyclingOsMemory: the OsMemory the fuzz executor gives every heap whose program does not ask
// for the failing fake OS. Each execution builds a fresh heap; with the real OS layer every one
// maps new arenas, faults in (and has the kernel zero) each page it touches and unmaps it all at
// the end, a quarter of an execution's time. This layer passes reserve/commit/release through to
// system_memory() but keeps unreserved regions: it zeroes the pages that were touched (mincore
// says which), makes the region inaccessible again (PROT_NONE, like a fresh reservation) and
// hands it to a later reserve() that fits in it (best fit). To the heap a recycled region is
// indistinguishable from a fresh one: reserved, inaccessible until committed, reading zero.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <mutex>
#include <vector>

namespace spanheap::fuzz {

class RecyclingOsMemory final : public OsMemory {
 public:
  // The process-wide instance (executions run one at a time, but the lock keeps it honest).
  static RecyclingOsMemory& instance();

  void* reserve(std::size_t size, std::size_t align) override;
  bool commit(void* p, std::size_t size) override;
  void release(void* p, std::size_t size) override;
  void unreserve(void* p, std::size_t size) override;

 private:
  // Address space kept for reuse: bounded, so resident memory stays small. 64 MiB holds the
  // arenas of a typical program within the input bounds (program.hpp) several times over.
  static constexpr std::size_t max_pool_bytes = std::size_t{64} << 20;
  struct Region {
    void* p;
    std::size_t size;
    std::size_t align;
  };
  bool scrub(void* p, std::size_t size);

  std::mutex mu_;
  std::vector<Region> pool_;         // unreserved, zeroed, PROT_NONE
  std::vector<Region> outstanding_;  // handed out by reserve(), with their whole size
  std::size_t pool_bytes_ = 0;
  std::vector<unsigned char> resident_;  // mincore() buffer, reused
};

}  // namespace spanheap::fuzz
