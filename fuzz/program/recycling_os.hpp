// RecyclingOsMemory: the OsMemory the fuzz executor gives every heap whose program does not ask
// for the failing fake OS. Each execution builds a fresh heap; with the real OS layer every one
// maps new arenas, faults in (and has the kernel zero) each page it touches and unmaps it all at
// the end. This layer keeps unreserved regions for a later reserve() and does only the kernel
// work the heap's contract needs:
//   reserve    a kept region that fits (best fit), else a new one from system_memory():
//              inaccessible (PROT_NONE, or poisoned under ASan, see unreserve) and reading zero,
//              like a fresh reservation;
//   commit     mprotect read-write through system_memory(), as the real layer does, so a heap
//              that touches memory it never committed still faults; the range is remembered.
//              Under ASan, a range an earlier heap committed is still mapped read-write and
//              poisoned (see unreserve): commit hands it over as it is, no system call and no
//              pass over the shadow; a fresh range is poisoned (keeps_poison);
//   release    zeroes the resident pages in place (mincore says which; with declared writes,
//              below, only the declared ones) instead of madvise(MADV_DONTNEED): the range reads
//              zero, as the contract says, and its pages do not fault again when a heap touches
//              them (with the mprotects gone under ASan this is 3-11% faster; with them it was
//              not);
//   unreserve  zeroes the resident pages of the committed ranges in place (mincore says which;
//              with declared writes, only the declared ones) and makes those ranges
//              inaccessible again: PROT_NONE, or under ASan poisoned, as the heap hands them
//              back (keeps_poison: any access by the instrumented heap is reported, as a fault
//              would be; the mprotects cost a tenth of an execution); the rest of the region was
//              never accessible to this heap, so it still reads zero.
// To the heap a recycled region behaves as a fresh one (under ASan, to its instrumented code: an
// access from code built without ASan to a poisoned range is not caught). Only the committed
// ranges are scrubbed: scrubbing every resident page of the region (as an earlier version did)
// rewrote pages that any earlier execution had touched, a cost that grew with the pool's age.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
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
  // Under ASan: memory is handed over and taken back poisoned (OsMemory::keeps_poison), so a
  // recycled range needs no pass over the shadow from either side: the heap's free pages are
  // poisoned already. A reservation handed back with an accessible page is not kept.
  bool keeps_poison() const noexcept override;

  // Declared writes. A caller that reports every write into the memory of this layer's regions
  // (note_written, rounded out to write_granule) turns this on; release() and unreserve() then
  // zero only the declared ranges instead of every resident page of the range (mincore), which
  // after a few thousand executions is every page a heap ever committed: 3 MB per page_heap
  // execution.
  // The fuzz executor declares the bytes it writes into objects, and every small object whole
  // (the heap's clobber_freed writes freed slots); the heap writes nothing else into its arenas,
  // and under ASan any other write would be reported (free and uncommitted memory is poisoned).
  // Nothing a heap does depends on the contents of memory it has not written, so a write that
  // escaped the declaration could only leave bytes in a later heap's fresh memory.
  void declare_writes(bool on);
  void note_written(const void* p, std::size_t n);
  // A cache line, not an OS page: the oracle writes a large object's two 256-byte ends and a
  // word every 64 KiB, about 600 bytes of a 21-page object, which at 4 KiB granularity cost
  // 16 KiB of zeroing. Adjacent small objects still merge into one range.
  static constexpr std::size_t write_granule = 64;

 private:
  // Address space kept for reuse: bounded, so resident memory stays bounded (a libFuzzer process
  // peaks near 110 MB RSS with it). page_heap programs reserve arenas of many sizes up to 4 MiB
  // and more; with 64 MiB one execution in twelve missed the pool and unmapped a region, and the
  // fresh mappings' first touches made it 1.13x slower.
  static constexpr std::size_t max_pool_bytes = std::size_t{256} << 20;
  using Range = std::pair<std::uintptr_t, std::uintptr_t>;  // [begin, end)
  struct Region {
    void* p = nullptr;
    std::size_t size = 0;
    std::vector<Range> committed;  // sorted, disjoint, adjacent ranges merged
    std::vector<Range> writable;   // mapped read-write and ASan-poisoned until committed (ASan)
    std::vector<Range> written;    // declared writes since the region was last zeroed
  };
  Region* outstanding_region(const void* p);
  bool scrub(Region& r);
  bool zero_resident(void* p, std::size_t n);
  void zero_written(Region& r, Range within);

  std::mutex mu_;
  std::multimap<std::size_t, Region> pool_;  // unreserved, zeroed, inaccessible; by size
  std::vector<Region> outstanding_;          // handed out by reserve(), with their whole size
  // Nodes of pool_ taken out by reserve(), for unreserve() to put the next region in: a heap's
  // arenas go back to the pool at every execution's teardown, and a fresh tree node each time
  // is an ASan malloc with its stack trace.
  std::vector<std::multimap<std::size_t, Region>::node_type> spare_nodes_;
  std::size_t pool_bytes_ = 0;
  bool declared_ = false;
  std::vector<unsigned char> resident_;  // mincore() buffer, reused
};

}  // namespace spanheap::fuzz
