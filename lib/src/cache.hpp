// cache: a P's span cache (Go's mcache): the allocation fast path, refill from central, release_all
// (flush) and prepare_for_sweep (the lazy flush a P does at acquire when its flush_gen is stale).
#pragma once

#include <cstddef>
#include <cstdint>

#include "span.hpp"
#include "stats.hpp"
#include "types.hpp"

namespace spanheap::detail {

class HeapState;

enum class FlushKind : std::uint8_t { lazy, barrier, eager, forced };

void cache_init(HeapState& heap, Cache& cache, std::uint32_t sg) noexcept;

// How many full spans a P owns per class besides its current one (Cache::owned, ReusePolicy::
// owner). A P frees into the spans it owns as their owner — a plain store, no free_lock — and
// collects them without central's lock; a free into a span in central takes free_lock and may take
// central's lock to move it to partial. So the bound is sized for a thread's whole working set of
// a class: 512 spans of 128 slots hold 64 Ki live objects of one class (with Go's 16-slot spans
// and a bound of 64, three quarters of a 64 Ki-object ring's frees took the locked path, a third
// of the thread's time). What it bounds is the flush of a cycle and the other Ps' frees that only
// the owner's collection or an eviction makes reusable (INV-S5).
inline constexpr std::uint32_t max_owned_spans = 512;
// How many of the oldest owned spans a refill looks at for one worth collecting (take_owned).
inline constexpr unsigned owned_scan = 4;

// Starts the load of the slot the class's next allocation will hand out from span `s`: slot
// `next` plus the alloc cache's first set bit, or `next` itself when the cache is empty (the next
// word's first slot, a guess). A program writes an object as soon as it has it, and a slot that
// has waited since its collection for the alloc cache to reach it is seldom still cached: without
// this, that write missed the cache about once an allocation over a ring larger than L2 (churn
// 1t), where mimalloc's allocation, which pops its free list, reads the next block's link and so
// brings that block in one allocation ahead. A hint: it never faults, so a guess past the span's
// last slot or a slot that is not free costs nothing but the load (docs/performance.md, "The
// next slot, prefetched").
// next_slot_address is the guess, apart so that a test holds it to the slot handed out next
// (SpanTest.FastAndSlowAllocationHandOutTheFreeSlotsInOrderUnderRandomSweeps).
[[gnu::always_inline]] inline std::uintptr_t next_slot_address(const Span& s, std::uint32_t next,
                                                               std::uint64_t cache,
                                                               std::size_t elem) noexcept {
#if defined(__x86_64__)
  // tzcnt, with no test of an empty cache: its answer then (64, or the register unchanged where
  // the instruction runs as bsf) only makes the guess another slot, or an address past the span.
  std::uint64_t k;
  asm("tzcnt %1, %0" : "=r"(k) : "r"(cache) : "cc");
#else
  const std::uint64_t k = cache == 0 ? 0 : static_cast<std::uint64_t>(__builtin_ctzll(cache));
#endif
  return s.start + (next + k) * elem;
}
[[gnu::always_inline]] inline void prefetch_next_slot(const Span& s, std::uint32_t next,
                                                      std::uint64_t cache,
                                                      std::size_t elem) noexcept {
  __builtin_prefetch(reinterpret_cast<const void*>(next_slot_address(s, next, cache, elem)), 1);
}

// Allocates one object of class `c` from the cache's span into `obj`, its size into `elem`; false
// when the alloc cache is empty (the caller goes to cache_alloc_slow). A bool, not a nullable
// pointer: the caller's test is then the empty cache's, not a second one of the address, which
// the compiler cannot prove non-null. Go's nextFreeFast,
// without its two bound tests: the cache holds no bit past nelems, and a slot that ends its 64-slot
// word leaves the cache empty, so the next allocation loads the next word in the slow path
// (INV-A3). Requires: owner P, flushed cache.
inline bool cache_alloc_fast(Cache& cache, unsigned c, void*& obj, std::size_t& elem) noexcept {
  Span* s = cache.alloc[c].load(std::memory_order_relaxed);
  const std::uint64_t bits = s->alloc_cache.load(std::memory_order_relaxed);
  if (bits == 0) return false;
  const auto k = static_cast<std::uint32_t>(__builtin_ctzll(bits));
  const std::uint32_t r = s->free_index.load(std::memory_order_relaxed) + k;
  const std::uint64_t rest = (bits >> k) >> 1;
  s->alloc_cache.store(rest, std::memory_order_relaxed);
  s->free_index.store(r + 1, std::memory_order_release);
  s->alloc_count++;
  elem = s->elem_size;
  obj = reinterpret_cast<void*>(s->start + r * elem);
  prefetch_next_slot(*s, r + 1, rest, elem);
  return true;
}

// The allocation counters' charge for `n` objects of span `s`'s class: added by a slow path for
// what it hands out and the free slots it leaves in the alloc cache (the fast path hands those
// out uncounted: Cache::allocs), taken back (n wraps below zero) by a flush for the slots the
// cache still holds. Both go through here so that the charge and its refund cannot drift apart.
inline void count_allocations(Cache& cache, const Span& s, std::uint64_t n) noexcept {
  bump(cache.allocs, n);
  bump(cache.alloc_bytes, n * s.elem_size);
}

// The free slots in span `s`'s alloc cache: counted when they entered it, not yet handed out.
inline std::uint64_t cached_slots(const Span& s) noexcept {
  return count_word(s.alloc_cache.load(std::memory_order_relaxed));
}

// The charge when a slow path hands `handed` objects out of `s`, the current span of a class, and
// leaves free slots of a word in its alloc cache. Requires: owner P, and the span's alloc cache
// empty when the slow path began (the fast path had failed on it), so nothing in it was counted
// before (cache_alloc_slow and next_word check that).
inline void count_slow_allocation(Cache& cache, const Span& s, unsigned handed) noexcept {
  count_allocations(cache, s, handed + cached_slots(s));
}

// The slow path: next free slot in the current span, else refill (uncache the full span, take one
// from central). nullptr only when memory is exhausted, or, with `may_refill` false, when no span
// this P caches has a slot to give or pending frees worth collecting (the caller then takes the
// whole slow path: refill, and the out-of-memory handling). Counts the object it returns and the
// slots it leaves in the alloc cache (count_slow_allocation). Requires: owner P, flushed cache,
// the class's alloc cache empty.
void* cache_alloc_slow(HeapState& heap, ProcState& p, unsigned c, bool may_refill = true);

// Returns every cached span to central (Go's releaseAll): stale ones are swept by this P now.
// Sets flush_gen = sg (release) and counts the flush. Requires: holds P (or world stopped).
void cache_flush(HeapState& heap, ProcState& p, FlushKind kind, bool keep_empty = false);

// Go's prepareForSweep: flush if flush_gen == sg-2 (checks flush_gen ∈ {sg, sg-2}).
inline bool cache_is_stale(std::uint32_t sg, const Cache& cache) noexcept {
  return cache.flush_gen.load(std::memory_order_acquire) != sg;
}

}  // namespace spanheap::detail
