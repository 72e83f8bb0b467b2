// arena: see arena.hpp.
#include "arena.hpp"

#include <algorithm>
#include <new>

#include "page_map.hpp"
#include "poison.hpp"

namespace spanheap::detail {
namespace {

// Bytes of the metadata reservation of an arena of `npages` pages: a header page, spans[] and
// history[], each region page-aligned so that each can be committed by itself.
struct MetaLayout {
  std::size_t spans_offset, spans_bytes, history_offset, history_bytes, total;
};
MetaLayout meta_layout(std::size_t npages) {
  MetaLayout m{};
  m.spans_offset = round_up(sizeof(Arena), page_size);
  m.spans_bytes = round_up(npages * sizeof(std::atomic<Span*>), page_size);
  m.history_offset = m.spans_offset + m.spans_bytes;
  m.history_bytes = round_up(history_words(npages) * sizeof(std::uint64_t), page_size);
  m.total = m.history_offset + m.history_bytes;
  return m;
}

// Commits [region + committed, region + want) when want > committed; false when the OS refuses.
bool commit_region(HeapState& heap, std::byte* region, std::size_t& committed, std::size_t want)
    REQUIRES(heap.pages.mu) {
  if (want <= committed) return true;
  if (!heap.os->commit(region + committed, want - committed)) return false;
  unpoison_from_os(heap, region + committed, want - committed);
  heap.pages.meta_bytes.fetch_add(want - committed, std::memory_order_relaxed);
  committed = want;
  return true;
}

}  // namespace

TableBytes table_bytes(std::size_t npages, std::size_t pages) {
  const MetaLayout m = meta_layout(npages);
  return {
      std::min(round_up(pages * sizeof(Span*), page_size), m.spans_bytes),
      std::min(round_up(history_words(pages) * sizeof(std::uint64_t), page_size), m.history_bytes)};
}

std::size_t table_growth(const Arena& arena, std::size_t pages) {
  const TableBytes want = table_bytes(arena.npages, pages);
  return (want.spans > arena.spans_committed ? want.spans - arena.spans_committed : 0) +
         (want.history > arena.history_committed ? want.history - arena.history_committed : 0);
}

bool commit_tables(HeapState& heap, Arena& arena, std::size_t pages) REQUIRES(heap.pages.mu) {
  if (pages <= arena.table_pages.load(std::memory_order_relaxed)) return true;
  const MetaLayout m = meta_layout(arena.npages);
  const TableBytes want = table_bytes(arena.npages, pages);
  auto* meta = static_cast<std::byte*>(arena.meta);
  if (!commit_region(heap, meta + m.spans_offset, arena.spans_committed, want.spans) ||
      !commit_region(heap, meta + m.history_offset, arena.history_committed, want.history))
    return false;
  const std::size_t covered = std::min(
      {arena.spans_committed / sizeof(Span*),
       arena.history_committed / sizeof(std::uint64_t) * history_pages_per_word, arena.npages});
  const std::size_t old = arena.table_pages.load(std::memory_order_relaxed);
  new (arena.spans + old) std::atomic<Span*>[ covered - old ]();
  // The word holding page `old` exists already when `old` is not the first page of a word.
  const std::size_t old_words = history_words(old);
  new (arena.history + old_words)
      std::atomic<std::uint64_t>[ history_words(covered) - old_words ]();
  arena.table_pages.store(covered, std::memory_order_release);  // the entries exist
  return true;
}

void unreserve_meta(HeapState& heap, Arena* arena) {
  const MetaLayout m = meta_layout(arena->npages);
  auto* meta = static_cast<std::byte*>(arena->meta);
  const std::size_t spans = arena->spans_committed;
  const std::size_t history = arena->history_committed;
  const std::size_t total = arena->meta_bytes;
  poison_for_os(heap, meta + m.spans_offset, spans);
  poison_for_os(heap, meta + m.history_offset, history);
  poison_for_os(heap, meta, page_size);  // the header, with *arena: read above, not after
  heap.os->unreserve(meta, total);
}

void drop_fresh_arena(HeapState& heap, Arena* arena) REQUIRES(heap.pages.mu) {
  SPANHEAP_DCHECK(&heap, heap.pages.arenas == arena && arena->committed_pages == 0,
                  "dropping an arena that is in use");
  heap.pages.arenas = arena->next;
  registry_remove(arena);
  const std::size_t bytes = arena->npages << page_shift;
  const std::size_t meta = arena->meta_bytes;
  heap.pages.meta_bytes.fetch_sub(page_size + arena->spans_committed + arena->history_committed,
                                  std::memory_order_relaxed);
  heap.pages.reserved_bytes.fetch_sub(bytes + meta, std::memory_order_relaxed);
  heap.os->unreserve(reinterpret_cast<void*>(arena->base), bytes);
  unreserve_meta(heap, arena);
}

std::size_t arena_size_for(const HeapState& heap, std::size_t min_pages) {
  const std::size_t bytes =
      round_up(std::max(heap.options.arena_bytes, granule_size), granule_size);
  return std::max(bytes, round_up(min_pages << page_shift, granule_size));
}

void advise_arena(HeapState& heap, Arena& arena) REQUIRES(heap.pages.mu) {
  SPANHEAP_DCHECK(&heap, arena.huge && !arena.advised,
                  "advice for an arena of small pages or twice");
  heap.os->advise_huge_pages(reinterpret_cast<void*>(arena.base),
                             (arena.npages << page_shift) / huge_page_size * huge_page_size);
  arena.advised = true;
}

Arena* new_arena(HeapState& heap, std::size_t bytes, bool huge, bool advise)
    REQUIRES(heap.pages.mu) {
  const std::size_t npages = bytes >> page_shift;
  const MetaLayout m = meta_layout(npages);
  // Huge pages need an aligned 2 MiB of one mapping: the arena starts on one, and its huge pages
  // are those it holds whole.
  SPANHEAP_DCHECK(&heap, !huge || arena_wants_huge(heap, bytes),
                  "an arena of huge pages too small for one");
  void* base =
      heap.os->reserve(bytes, huge ? std::max(granule_size, huge_page_size) : granule_size);
  if (base == nullptr) return nullptr;
  void* meta = heap.os->reserve(m.total, page_size);
  if (meta == nullptr || !heap.os->commit(meta, page_size)) {
    if (meta != nullptr) heap.os->unreserve(meta, m.total);
    heap.os->unreserve(base, bytes);
    return nullptr;
  }
  unpoison_from_os(heap, meta, page_size);
  auto* arena = new (meta) Arena();
  arena->base = reinterpret_cast<std::uintptr_t>(base);
  arena->npages = npages;
  arena->owner = &heap;
  arena->huge = huge;
  if (huge && advise) advise_arena(heap, *arena);
  arena->meta = meta;
  arena->meta_bytes = m.total;
  auto* bytes_at = static_cast<std::byte*>(meta);
  arena->spans = reinterpret_cast<std::atomic<Span*>*>(bytes_at + m.spans_offset);
  arena->history = reinterpret_cast<std::atomic<std::uint64_t>*>(bytes_at + m.history_offset);
  arena->next = heap.pages.arenas;
  heap.pages.arenas = arena;
  heap.pages.reserved_bytes.fetch_add(bytes + m.total, std::memory_order_relaxed);
  heap.pages.meta_bytes.fetch_add(page_size, std::memory_order_relaxed);
  // Not poisoned here: the uncommitted part is inaccessible anyway, and grow() poisons what it
  // commits (poisoning a whole arena up front cost a shadow write per 8 bytes of address space,
  // and as much again at teardown, in every fuzz execution).
  registry_insert(arena);
  return arena;
}

}  // namespace spanheap::detail
