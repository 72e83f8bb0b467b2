// bench/allocators.hpp: the allocator adapters that every throughput benchmark is written against,
// so one harness source measures spanheap and its peers alike (docs/performance.md).
//
// A binary measures exactly one allocator, chosen at compile time with SPANHEAP_BENCH_ALLOCATOR
// (bench/CMakeLists.txt builds one binary per allocator). One process per allocator is needed
// anyway: jemalloc and tcmalloc replace malloc when linked, and peak RSS (getrusage ru_maxrss) is
// a per-process number.
//
// Every adapter has the same three static members:
//   name()            short lower-case name, as the results tables print it;
//   allocate(size)    a fresh object of at least `size` bytes (never nullptr in these workloads);
//   deallocate(p)     frees `p`, from any thread. Unsized on purpose: not every peer has sized
//                     free, and spanheap's free does not need the size;
//   self_check()      true when allocate() really reaches that allocator (a binary linked
//                     against the wrong library, or whose malloc another library replaced,
//                     would otherwise report someone else's numbers under this name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#define SPANHEAP_BENCH_SPANHEAP 1
#define SPANHEAP_BENCH_GLIBC 2
#define SPANHEAP_BENCH_MIMALLOC 3
#define SPANHEAP_BENCH_JEMALLOC 4
#define SPANHEAP_BENCH_TCMALLOC 5

#ifndef SPANHEAP_BENCH_ALLOCATOR
#error "define SPANHEAP_BENCH_ALLOCATOR to one of the SPANHEAP_BENCH_* values"
#endif

#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
#include <spanheap/spanheap.hpp>
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_GLIBC
#include <malloc.h>
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_MIMALLOC
#include <mimalloc.h>
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_JEMALLOC
// Debian builds jemalloc without a symbol prefix: linking it replaces malloc for the whole
// process (the harness's own vectors included), so plain malloc/free below are jemalloc's.
#include <jemalloc/jemalloc.h>
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_TCMALLOC
#include <gperftools/tcmalloc.h>
#endif

namespace spanheap::bench {

#if SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_SPANHEAP
// The process-wide heap with default options (pacing on, gc_percent=100, one background sweeper,
// one P per CPU), overridable through the SPANHEAP_* environment variables. Its cycles and
// sweeps run inside the measured loops, as they would in a program.
spanheap::Heap& bench_heap();
// Set to &bench_heap() by main() before any benchmark runs, so the measured calls do not pay for
// the function-local static's guard (12 instructions per call under callgrind).
inline spanheap::Heap* bench_heap_ptr = nullptr;

struct Allocator {
  static const char* name() { return "spanheap"; }
  static void* allocate(std::size_t size) { return bench_heap_ptr->allocate(size); }
  static void deallocate(void* p) { bench_heap_ptr->free(p); }
  static bool self_check() {
    void* p = allocate(100);
    const bool ok = p != nullptr && bench_heap_ptr->owns(p);
    deallocate(p);
    return ok;
  }
};
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_GLIBC
struct Allocator {
  static const char* name() { return "glibc"; }
  static void* allocate(std::size_t size) { return std::malloc(size); }
  static void deallocate(void* p) { std::free(p); }
  // glibc's own statistics must see the allocation: they do not when another allocator has
  // replaced malloc in this binary.
  static bool self_check() {
    const std::size_t before = mallinfo2().uordblks;
    void* p = allocate(1000);
    const bool ok = p != nullptr && mallinfo2().uordblks >= before + 1000;
    deallocate(p);
    return ok;
  }
};
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_MIMALLOC
// Called directly (mi_malloc/mi_free), not through LD_PRELOAD or the override header. Debian's
// libmimalloc.so also exports malloc/free, so linking it moves the harness's own (few, untimed)
// allocations to mimalloc too, as with jemalloc and tcmalloc.
struct Allocator {
  static const char* name() { return "mimalloc"; }
  static void* allocate(std::size_t size) { return mi_malloc(size); }
  static void deallocate(void* p) { mi_free(p); }
  static bool self_check() {
    void* p = allocate(100);
    const bool ok = p != nullptr && mi_is_in_heap_region(p);
    deallocate(p);
    return ok;
  }
};
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_JEMALLOC
struct Allocator {
  static const char* name() { return "jemalloc"; }
  static void* allocate(std::size_t size) { return malloc(size); }
  static void deallocate(void* p) { free(p); }
  // jemalloc counts the bytes each thread allocates (stats are on in Debian's build): the count
  // must move when malloc is called.
  static bool self_check() {
    std::uint64_t before = 0, after = 0;
    std::size_t len = sizeof(before);
    if (mallctl("thread.allocated", &before, &len, nullptr, 0) != 0) return false;
    void* p = allocate(1000);
    len = sizeof(after);
    const bool ok = p != nullptr && mallctl("thread.allocated", &after, &len, nullptr, 0) == 0 &&
                    after >= before + 1000;
    deallocate(p);
    return ok;
  }
};
#elif SPANHEAP_BENCH_ALLOCATOR == SPANHEAP_BENCH_TCMALLOC
// libtcmalloc_minimal also replaces malloc when linked; tc_malloc/tc_free name it explicitly.
struct Allocator {
  static const char* name() { return "tcmalloc"; }
  static void* allocate(std::size_t size) { return tc_malloc(size); }
  static void deallocate(void* p) { tc_free(p); }
  static bool self_check() {
    void* p = allocate(100);
    const bool ok = p != nullptr && tc_malloc_size(p) >= 100;
    deallocate(p);
    return ok;
  }
};
#else
#error "unknown SPANHEAP_BENCH_ALLOCATOR"
#endif

}  // namespace spanheap::bench
