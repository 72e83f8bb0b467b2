// stats: assembling Stats from the heap's counters (cumulative, per P and per heap).
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstdint>

#include "check.hpp"

namespace spanheap::detail {

class HeapState;

// Racy snapshot (exact when the world is stopped).
Stats collect_stats(const HeapState& heap);
// Bytes freed and not yet reclaimed by a sweep.
std::uint64_t pending_bytes(const HeapState& heap);
// Bytes allocated and never freed (what a cycle's sweep leaves live). Cheap: for the pause.
std::uint64_t surviving_bytes(const HeapState& heap);

// Single-writer counter bump (the holder of a P), no locked instruction. On x86-64 one `add` to
// memory: a relaxed load and store of the atomic compile to three instructions and keep the value
// in a register the fast paths need, and an aligned 8-byte store is never seen torn by the racy
// readers (stats()). TSan builds keep the atomic load and store, which it can see.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by) noexcept {
#if defined(__x86_64__) && !defined(SPANHEAP_TSAN)
  static_assert(sizeof(counter) == sizeof(std::uint64_t));
  asm volatile("addq %1, %0" : "+m"(counter) : "er"(by));
#else
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
#endif
}

}  // namespace spanheap::detail
