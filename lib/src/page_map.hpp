// page_map: address -> arena -> span, lock-free for readers (Go's heapArena.spans and
// spanOf/findObject). A process-wide registry maps 1 MiB granules to arenas, so any pointer can be
// classified: foreign, another heap's, or this heap's (free pages, span tail, slot, object).
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstdint>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Registry of every live arena in the process. Writers hold the registry lock; readers are
// lock-free (two acquire loads). Interior nodes are never freed, so a reader never sees freed
// memory; an arena is removed before it is unreserved.
void registry_insert(Arena* arena);
void registry_remove(Arena* arena);
// The registry lock, held across fork() by the fork handlers (fork.cpp).
void registry_lock_for_fork();
void registry_unlock_after_fork();

namespace registry {
// 48-bit user address space in 1 MiB granules: 2^28 granules, split 14 + 14 bits.
inline constexpr unsigned l2_bits = 14;
inline constexpr std::size_t l1_entries = std::size_t{1} << (48 - granule_shift - l2_bits);
inline constexpr std::size_t l2_entries = std::size_t{1} << l2_bits;
struct L2 {
  std::atomic<Arena*> arenas[l2_entries];
};
extern std::atomic<L2*> l1[l1_entries];
}  // namespace registry

inline Arena* registry_lookup(std::uintptr_t addr) noexcept {
  const std::size_t g_index = addr >> granule_shift;
  const std::size_t i1 = g_index >> registry::l2_bits;
  if (SPANHEAP_UNLIKELY(i1 >= registry::l1_entries)) return nullptr;
  registry::L2* l2 = registry::l1[i1].load(std::memory_order_acquire);
  if (SPANHEAP_UNLIKELY(l2 == nullptr)) return nullptr;
  return l2->arenas[g_index & (registry::l2_entries - 1)].load(std::memory_order_acquire);
}

// What page `page` of `arena` was last used for. Lock-free; `page` < table_pages.
inline PageHistory page_history(const Arena& arena, std::size_t page) noexcept {
  const std::uint64_t word =
      arena.history[page / history_pages_per_word].load(std::memory_order_relaxed);
  return static_cast<PageHistory>(word >> (page % history_pages_per_word * history_bits) &
                                  ((1u << history_bits) - 1));
}

// The span whose pages contain `addr` (in use or free), or nullptr when `addr` is not in a
// committed page of one of `heap`'s arenas. `arena_out` receives the arena when it is this heap's.
Span* span_of(const HeapState& heap, std::uintptr_t addr, Arena** arena_out = nullptr) noexcept;
// What the fast paths leave to Heap::allocate_zeroed: they do not clear, so it clears `obj`
// unless its span still holds only fresh pages (Span::need_zero).
[[gnu::noinline]] void clear_if_dirty(const HeapState& heap, void* obj, std::size_t size) noexcept;

// Sets the page-table entries of [span.start, span.start + npages) to `span`.
// Requires: page heap lock.
void page_map_set(Arena& arena, std::uintptr_t start, std::size_t npages, Span* span) noexcept;

// Classifies `p` for `heap` (Heap::find_object): safe for any pointer while other threads run.
// Holds the page heap lock while it reads the span, so the span's fields are those of one use of
// it (docs/design.md "Bad input" says what is exact). Requires: the caller holds no heap lock.
PointerInfo find_object(const HeapState& heap, const void* p) noexcept;

}  // namespace spanheap::detail
