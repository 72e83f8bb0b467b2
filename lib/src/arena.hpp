// arena: an arena's reservation and its metadata, which lives outside it: the header page (the
// Arena struct), the page -> span table and the page history, each committed as the arena's
// pages are (Go's heapArena). page_heap grows the heap through these and carves its runs.
#pragma once

#include <cstddef>

#include "check.hpp"
#include "heap_state.hpp"

namespace spanheap::detail {

constexpr std::size_t round_up(std::size_t x, std::size_t to) { return (x + to - 1) / to * to; }

// Bytes of spans[] and history[] that must be committed for the tables to cover `pages` pages.
struct TableBytes {
  std::size_t spans, history;
};
TableBytes table_bytes(std::size_t npages, std::size_t pages);

// Metadata to commit so that the tables cover `pages` pages of `arena` (0 when they do).
std::size_t table_growth(const Arena& arena, std::size_t pages);

// Commits the tables of `arena` up to `pages` pages (Go commits heapArena metadata as it grows,
// too). False when the OS refuses.
bool commit_tables(HeapState& heap, Arena& arena, std::size_t pages) REQUIRES(heap.pages.mu);

// Unreserves the metadata of `arena` (which lives in it, so `arena` is gone after this), its
// committed parts poisoned again first for an OS layer that keeps poison.
void unreserve_meta(HeapState& heap, Arena* arena);

// Gives back an arena that never got a committed page (a growth that failed after reserving it).
void drop_fresh_arena(HeapState& heap, Arena* arena) REQUIRES(heap.pages.mu);

// The bytes of address space an arena for a request of `min_pages` pages spans.
std::size_t arena_size_for(const HeapState& heap, std::size_t min_pages);

// Whether an arena of `bytes` may be one of huge pages (Arena::huge): Options::huge_pages, and
// room for one at least.
inline bool arena_wants_huge(const HeapState& heap, std::size_t bytes) noexcept {
  return heap.options.huge_pages && bytes >= huge_page_size;
}

// Reserves an arena of `bytes` and commits its header page (its tables are committed by grow()).
// `huge`: an arena of huge pages (requires arena_wants_huge); `advise`: advised at once
// (advise_arena), else left on small pages until a growth advises it.
Arena* new_arena(HeapState& heap, std::size_t bytes, bool huge, bool advise)
    REQUIRES(heap.pages.mu);

// Advises the whole huge pages of an arena of huge pages (Arena::advised).
void advise_arena(HeapState& heap, Arena& arena) REQUIRES(heap.pages.mu);

}  // namespace spanheap::detail
