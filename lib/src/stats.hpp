// stats: assembling Stats from the heap's counters (cumulative, per P and per heap).
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstdint>

namespace spanheap::detail {

class HeapState;

// Racy snapshot (exact when the world is stopped).
Stats collect_stats(const HeapState& heap);
// Bytes freed and not yet reclaimed by a sweep.
std::uint64_t pending_bytes(const HeapState& heap);
// Bytes allocated and never freed (what a cycle's sweep leaves live). Cheap: for the pause.
std::uint64_t surviving_bytes(const HeapState& heap);

// Single-writer counter bump (the holder of a P): a load and a store, no locked instruction.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace spanheap::detail
