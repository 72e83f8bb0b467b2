// page_heap: see page_heap.hpp.
#include "page_heap.hpp"

#include <algorithm>
#include <new>

#include "arena.hpp"
#include "heap_state.hpp"
#include "pacing.hpp"
#include "page_map.hpp"
#include "poison.hpp"
#include "report.hpp"

namespace spanheap::detail {

// ---- SpanList -------------------------------------------------------------------------------

void list_push_back(SpanList& list, Span* span) noexcept {
  span->prev = list.last;
  span->next = nullptr;
  if (list.last != nullptr) {
    list.last->next = span;
  } else {
    list.first = span;
  }
  list.last = span;
  span->list.store(&list, std::memory_order_relaxed);
  list.count++;
  list.pages += span->npages;
}

void list_remove(SpanList& list, Span* span) noexcept {
  if (span->prev != nullptr) {
    span->prev->next = span->next;
  } else {
    list.first = span->next;
  }
  if (span->next != nullptr) {
    span->next->prev = span->prev;
  } else {
    list.last = span->prev;
  }
  span->next = span->prev = nullptr;
  span->list.store(nullptr, std::memory_order_relaxed);
  list.count--;
  list.pages -= span->npages;
}

Span* list_pop_front(SpanList& list) noexcept {
  Span* s = list.first;
  if (s != nullptr) list_remove(list, s);
  return s;
}

namespace {

// How many spans page_alloc sweeps looking for a free run before it grows the heap instead (as
// many as cache_span's span_budget, Go's spanBudget).
constexpr int page_sweep_budget = 100;

// Metadata reservations are made in chunks of this size (a few hundred Span structs).
constexpr std::size_t span_chunk_bytes = 64 * 1024;

// The pacer's charge under ReusePolicy::owner (heap_state.hpp Pacer::allocated): pages handed out
// since the bump net of those taken back. The page heap's lock orders every write but the bump's
// reset, which runs with every P and sweeper stopped.
void pacer_charge_pages(HeapState& heap, std::size_t npages) REQUIRES(heap.pages.mu) {
  std::atomic<std::uint64_t>& charged = heap.pacer.allocated;
  charged.store(charged.load(std::memory_order_relaxed) + (std::uint64_t{npages} << page_shift),
                std::memory_order_relaxed);
}

// Saturating: pages charged before the bump were reset with it, and giving them back would wrap
// the charge to a cycle at every slow allocation (INV-P3). Memory freed past 0 banks no credit:
// the heap grows by at most the trigger from wherever it shrank to.
void pacer_credit_pages(HeapState& heap, std::size_t npages) REQUIRES(heap.pages.mu) {
  std::atomic<std::uint64_t>& charged = heap.pacer.allocated;
  const std::uint64_t bytes = std::uint64_t{npages} << page_shift;
  const std::uint64_t now = charged.load(std::memory_order_relaxed);
  charged.store(now > bytes ? now - bytes : 0, std::memory_order_relaxed);
}

// A page count of the page heap updated by the holder of its lock, which orders every writer of
// these counters: a load and a store, not a locked read-modify-write (a few nanoseconds each, and
// a large allocation and its free made four of them). stats() and verify() read them.
void count_pages(HeapState& heap, std::atomic<std::size_t>& counter, std::size_t add,
                 std::size_t sub) REQUIRES(heap.pages.mu) {
  (void)heap;  // named for the lock it requires
  counter.store(counter.load(std::memory_order_relaxed) + add - sub, std::memory_order_relaxed);
}

Span* new_span_struct(HeapState& heap) REQUIRES(heap.pages.mu) {
  if (heap.pages.span_pool != nullptr) {
    Span* s = heap.pages.span_pool;
    heap.pages.span_pool = s->next;
    s->next = nullptr;
    return s;
  }
  if (heap.pages.chunk_cursor == nullptr ||
      heap.pages.chunk_end - heap.pages.chunk_cursor < std::ptrdiff_t(sizeof(Span))) {
    void* mem = heap.os->reserve(span_chunk_bytes, page_size);
    if (mem == nullptr) return nullptr;
    if (!heap.os->commit(mem, span_chunk_bytes)) {
      heap.os->unreserve(mem, span_chunk_bytes);
      return nullptr;
    }
    unpoison_from_os(heap, mem, span_chunk_bytes);
    auto* chunk = static_cast<PageHeap::Chunk*>(mem);
    chunk->base = mem;
    chunk->size = span_chunk_bytes;
    chunk->next = heap.pages.chunks;
    heap.pages.chunks = chunk;
    heap.pages.reserved_bytes.fetch_add(span_chunk_bytes, std::memory_order_relaxed);
    heap.pages.meta_bytes.fetch_add(span_chunk_bytes, std::memory_order_relaxed);
    const std::size_t header = round_up(sizeof(PageHeap::Chunk), alignof(Span));
    heap.pages.chunk_cursor = static_cast<std::byte*>(mem) + header;
    heap.pages.chunk_end = static_cast<std::byte*>(mem) + span_chunk_bytes;
  }
  Span* s = new (heap.pages.chunk_cursor) Span();
  heap.pages.chunk_cursor += round_up(sizeof(Span), alignof(Span));
  return s;
}

// Returns a Span struct to the pool. Its sweepgen is deliberately kept (INV-S6): a sweeper or freer
// that still holds the pointer can never win a CAS against a recycled struct.
void recycle_span_struct(HeapState& heap, Span* s) REQUIRES(heap.pages.mu) {
  s->state.store(SpanState::dead, std::memory_order_release);
  s->list.store(nullptr, std::memory_order_relaxed);
  s->prev = nullptr;
  s->next = heap.pages.span_pool;
  heap.pages.span_pool = s;
}

// A run's kind is its arena's (PageHeap::free_runs).
unsigned kind_of(const Span* s) noexcept { return s->arena->huge ? 1 : 0; }

SpanList& free_list_for(PageHeap& ph, unsigned kind, std::size_t npages) REQUIRES(ph.mu) {
  return npages < free_list_exact ? ph.free_runs[kind][npages] : ph.free_long[kind];
}

void insert_free(PageHeap& ph, Span* s) REQUIRES(ph.mu) {
  const unsigned kind = kind_of(s);
  list_push_back(free_list_for(ph, kind, s->npages), s);
  if (s->npages < free_list_exact)
    ph.nonempty[kind][s->npages / 64] |= std::uint64_t{1} << (s->npages % 64);
}

void remove_free(PageHeap& ph, Span* s) REQUIRES(ph.mu) {
  SpanList* list = s->list.load(std::memory_order_relaxed);
  list_remove(*list, s);
  if (s->npages < free_list_exact && list->first == nullptr)
    ph.nonempty[kind_of(s)][s->npages / 64] &= ~(std::uint64_t{1} << (s->npages % 64));
}

// First fit over the exact lists of `kind`, then best fit over its long list.
Span* find_free(PageHeap& ph, unsigned kind, std::size_t npages) REQUIRES(ph.mu) {
  // The smallest non-empty exact list ≥ npages, found with the bitmap of non-empty lists.
  for (std::size_t w = npages / 64; npages < free_list_exact && w < free_list_exact / 64; w++) {
    std::uint64_t bits = ph.nonempty[kind][w];
    if (w == npages / 64) bits &= ~std::uint64_t{0} << (npages % 64);
    if (bits != 0)
      return ph.free_runs[kind][w * 64 + static_cast<std::size_t>(__builtin_ctzll(bits))].first;
  }
  Span* best = nullptr;
  for (Span* s = ph.free_long[kind].first; s != nullptr; s = s->next) {
    if (s->npages >= npages && (best == nullptr || s->npages < best->npages)) best = s;
  }
  return best;
}

// Sets the history of pages [start, start + npages): whole words with one store, the partial
// words at the ends with a load and a store (every writer holds the page heap lock; readers load
// whole words).
void set_history([[maybe_unused]] HeapState& heap, Arena& arena, std::uintptr_t start,
                 std::size_t npages, PageHistory h) REQUIRES(heap.pages.mu) {
  const std::uint64_t fill = 0x5555555555555555ull * static_cast<std::uint64_t>(h);
  const std::size_t first = (start - arena.base) >> page_shift;
  const std::size_t last = first + npages - 1;
  std::atomic<std::uint64_t>* word = &arena.history[first / history_pages_per_word];
  std::atomic<std::uint64_t>* const last_word = &arena.history[last / history_pages_per_word];
  // The fields of the run's pages in its first and its last word (the same word for a short
  // run); the words between are the run's whole. Straight-line rather than a loop that sized each
  // word's share: a large allocation and its free write ~2 words each, and the loop's min and
  // masks were most of the cost.
  std::uint64_t mask = ~std::uint64_t{0} << (first % history_pages_per_word * history_bits);
  const std::uint64_t last_mask =
      ~std::uint64_t{0} >>
      ((history_pages_per_word - 1 - last % history_pages_per_word) * history_bits);
  if (word != last_word) {
    word->store((word->load(std::memory_order_relaxed) & ~mask) | (fill & mask),
                std::memory_order_relaxed);
    for (++word; word != last_word; ++word) word->store(fill, std::memory_order_relaxed);
    mask = ~std::uint64_t{0};
  }
  mask &= last_mask;
  word->store((word->load(std::memory_order_relaxed) & ~mask) | (fill & mask),
              std::memory_order_relaxed);
}

// The free run that starts or ends at page `page` of `arena`, taken off its free list (its pages
// stop counting as released); nullptr when that page holds no free run.
Span* take_free_neighbour(HeapState& heap, Arena& arena, std::size_t page) REQUIRES(heap.pages.mu) {
  Span* n = arena.spans[page].load(std::memory_order_relaxed);
  if (n == nullptr || n->state.load(std::memory_order_relaxed) != SpanState::free) return nullptr;
  remove_free(heap.pages, n);
  if (n->released) heap.pages.released_bytes.fetch_sub(n->bytes(), std::memory_order_relaxed);
  return n;
}

// Adds free run `s`, whose pages map to it, to the free lists, merged with its free neighbours in
// the same arena. Every page of a free run maps to the run's struct (INV: verify's page_map check),
// so a merge remaps the pages of all but one of the merged runs: the largest keeps its struct and
// its pages, and only the others are remapped (a freed span next to the arena's long free tail
// costs its own pages, not the tail's: remapping the whole merged run was about a third of a large
// allocation and free). The other structs are recycled; a freer that loaded one of them sees it
// dead and reads the page history.
void coalesce_and_insert(HeapState& heap, Span* s) REQUIRES(heap.pages.mu) {
  Arena& arena = *s->arena;
  const std::size_t first = (s->start - arena.base) >> page_shift;
  const std::size_t end = first + s->npages;
  Span* parts[3] = {first > 0 ? take_free_neighbour(heap, arena, first - 1) : nullptr, s,
                    end < arena.committed_pages ? take_free_neighbour(heap, arena, end) : nullptr};
  Span* keep = s;
  const auto freed_at = s->free_since;
  std::uintptr_t start = s->start;
  std::size_t npages = 0;
  bool need_zero = false;
  for (Span* part : parts) {
    if (part == nullptr) continue;
    start = std::min(start, part->start);
    npages += part->npages;
    need_zero = need_zero || part->need_zero.load(std::memory_order_relaxed);
    if (part->npages > keep->npages) keep = part;
  }
  for (Span* part : parts) {
    if (part == nullptr || part == keep) continue;
    page_map_set(arena, part->start, part->npages, keep);
    recycle_span_struct(heap, part);
  }
  // The merged run counts as resident (released_bytes dropped its released parts above) and as
  // freed now: the scavenger releases it again once it has been idle long enough.
  keep->start = start;
  keep->npages = npages;
  keep->need_zero.store(need_zero, std::memory_order_relaxed);
  keep->released = false;
  keep->free_since = freed_at;
  insert_free(heap.pages, keep);
}

// Commits at least `npages` more pages as one free run of `kind` (in an arena of that kind). False
// when the memory limit or the OS refuses; a growth that fails gives back whatever it reserved
// for itself.
bool grow(HeapState& heap, unsigned kind, std::size_t npages) REQUIRES(heap.pages.mu) {
  Arena* arena = heap.pages.current[kind];
  const bool fresh = arena == nullptr || arena->npages - arena->committed_pages < npages;
  const std::size_t fresh_bytes = fresh ? arena_size_for(heap, npages) : 0;
  const std::size_t arena_pages = fresh ? fresh_bytes >> page_shift : arena->npages;
  const std::size_t room = fresh ? arena_pages : arena->npages - arena->committed_pages;
  // At least Options::commit_bytes (512 KiB by default), so small spans do not cost one commit
  // each: a tunable between commit calls and committed-but-unused memory.
  const std::size_t min_commit_pages = heap.options.commit_bytes >> page_shift;
  std::size_t commit_pages = std::min(std::max(npages, min_commit_pages), room);
  // In an advised arena of huge pages, growth ends on a huge page's end: a huge page is only
  // built for an aligned 2 MiB that is committed whole, and the first touch of it faults it all
  // in anyway. The heap's first arena of huge pages is not advised until a growth passes its
  // first huge page: a program whose small objects fit in 2 MiB (a short command) then
  // neither waits for the kernel to clear a whole huge page at its first allocation nor keeps
  // 2 MiB resident for a few kilobytes of objects.
  const std::size_t done_pages = fresh ? 0 : arena->committed_pages;
  const bool advised = kind == 1 && (fresh ? heap.pages.current[1] != nullptr : arena->advised);
  const bool advise = kind == 1 && (advised || done_pages + commit_pages > pages_per_huge_page);
  if (advise)
    commit_pages =
        std::min(round_up(done_pages + commit_pages, pages_per_huge_page) - done_pages, room);
  // The memory limit counts metadata too, and is checked before anything is reserved: a refused
  // request costs neither address space nor resident page tables.
  const std::size_t limit = heap.options.memory_limit;
  if (limit != 0) {
    const std::size_t used = heap.pages.committed_bytes.load(std::memory_order_relaxed) +
                             heap.pages.meta_bytes.load(std::memory_order_relaxed);
    auto cost = [&](std::size_t pages) {
      const TableBytes t = table_bytes(arena_pages, pages);
      const std::size_t tables =
          fresh ? page_size + t.spans + t.history : table_growth(*arena, done_pages + pages);
      return (pages << page_shift) + tables;
    };
    if (used + cost(commit_pages) > limit) {
      commit_pages = npages;  // try the bare minimum before giving up
      if (used + cost(commit_pages) > limit) return false;
    }
  }
  if (fresh) {
    arena = new_arena(heap, fresh_bytes, kind == 1, advise);
    if (arena == nullptr) return false;
  } else if (advise && !arena->advised) {
    advise_arena(heap, *arena);
  }
  const std::uintptr_t start = arena->base + (arena->committed_pages << page_shift);
  Span* s = nullptr;
  if (!commit_tables(heap, *arena, arena->committed_pages + commit_pages) ||
      !heap.os->commit(reinterpret_cast<void*>(start), commit_pages << page_shift) ||
      (s = new_span_struct(heap)) == nullptr) {
    if (fresh) drop_fresh_arena(heap, arena);
    return false;
  }
  // A dedicated arena for a request larger than Options::arena_bytes does not replace the
  // current one, whose uncommitted rest stays in use for ordinary growth.
  if (fresh && (heap.pages.current[kind] == nullptr ||
                arena_pages <= (heap.options.arena_bytes >> page_shift)))
    heap.pages.current[kind] = arena;
  // A free run, poisoned (DebugOptions::poison_freed): an OS layer that keeps poison hands it over
  // poisoned already, which spares a pass over the shadow of every arena commit.
  if (!os_keeps_poison(heap)) {
    poison_memory(heap, reinterpret_cast<void*>(start), commit_pages << page_shift);
  } else if (!heap.options.debug.poison_freed) {
    unpoison_from_os(heap, reinterpret_cast<void*>(start), commit_pages << page_shift);
  }
  arena->committed_pages += commit_pages;
  heap.pages.committed_bytes.fetch_add(commit_pages << page_shift, std::memory_order_relaxed);
  count_pages(heap, heap.pages.free_pages, commit_pages, 0);
  s->start = start;
  s->npages = commit_pages;
  s->arena = arena;
  s->need_zero.store(false, std::memory_order_relaxed);
  s->released = false;
  s->free_since = heap.counters.cycles.load(std::memory_order_relaxed);
  s->sweepgen.store(heap.sg(), std::memory_order_relaxed);
  s->state.store(SpanState::free, std::memory_order_release);
  page_map_set(*arena, start, commit_pages, s);  // coalescing remaps only runs it absorbs
  coalesce_and_insert(heap, s);
  return true;
}

// Moves the first `n` pages of free run `s` (n < s->npages) into a new struct, returned outside
// any list; `s` keeps the rest and stays a free run. nullptr when no struct can be had.
Span* split_front(HeapState& heap, Span* s, std::size_t n) REQUIRES(heap.pages.mu) {
  Span* front = new_span_struct(heap);
  if (front == nullptr) return nullptr;
  remove_free(heap.pages, s);
  front->start = s->start;
  front->npages = n;
  front->arena = s->arena;
  front->need_zero.store(s->need_zero.load(std::memory_order_relaxed), std::memory_order_relaxed);
  front->released = s->released;
  s->start += n << page_shift;
  s->npages -= n;
  insert_free(heap.pages, s);
  return front;
}

// Takes `npages` from the front of free run `s` and returns the in-use span.
Span* carve(HeapState& heap, Span* s, std::size_t npages) REQUIRES(heap.pages.mu) {
  Span* out = s;
  if (s->npages > npages) {
    // Carve the front into a new struct and keep `s` as the shrunken free run: only the carved
    // pages are remapped, not the whole remaining run (which made carving O(run length)).
    out = split_front(heap, s, npages);
    if (out == nullptr) return nullptr;
    if (out->released) heap.pages.released_bytes.fetch_sub(out->bytes(), std::memory_order_relaxed);
  } else {
    remove_free(heap.pages, s);
    if (s->released) heap.pages.released_bytes.fetch_sub(s->bytes(), std::memory_order_relaxed);
  }
  out->released = false;
  count_pages(heap, heap.pages.free_pages, 0, npages);
  count_pages(heap, heap.pages.in_use_pages, npages, 0);
  if (heap.options.reuse == ReusePolicy::owner) pacer_charge_pages(heap, npages);
  set_history(heap, *out->arena, out->start, npages, PageHistory::in_use);
  // Reset allocation state; sweepgen becomes sg (T1) before the span is published anywhere.
  out->alloc_cache.store(0, std::memory_order_relaxed);
  out->free_index.store(0, std::memory_order_relaxed);
  out->nelems = 0;
  out->alloc_count = 0;
  out->elem_size = 0;
  out->list.store(nullptr, std::memory_order_relaxed);
  out->next = out->prev = nullptr;
  out->owner_word.store(Span::owner_none, std::memory_order_relaxed);
  // T1: a new span starts at sg. Its state stays dead until span_init_* publishes it in_use.
  out->sweepgen.store(heap.sg(), std::memory_order_release);
  out->state.store(SpanState::dead, std::memory_order_release);
  // A whole free run taken as it is already maps every page to its struct (every page of a run,
  // free or in use, maps to it: verify's page_map check), so only a carved front is remapped.
  // Exact fits are common: a freed large object's run is taken again by the next allocation of
  // its size (45 % of sizes/large's allocations).
  if (out != s) page_map_set(*out->arena, out->start, npages, out);
  return out;
}

// carve() from the first multiple of `align` in free run `s` (which holds at least npages pages
// past it): the pages before it stay a free run of their own. The trailing excess needs no work
// (carve leaves it as the shrunken run), so an aligned allocation costs one extra Span struct at
// most. Over-allocating a whole span and trimming it after the fact was the alternative; splitting
// the free run first never maps pages to a span that does not keep them.
Span* carve_aligned(HeapState& heap, Span* s, std::size_t npages, std::size_t align)
    REQUIRES(heap.pages.mu) {
  const std::size_t lead = (round_up(s->start, align) - s->start) >> page_shift;
  if (lead == 0) return carve(heap, s, npages);
  Span* front = split_front(heap, s, lead);
  if (front == nullptr) return nullptr;
  front->free_since = s->free_since;
  front->sweepgen.store(heap.sg(), std::memory_order_relaxed);
  front->state.store(SpanState::free, std::memory_order_release);
  page_map_set(*front->arena, front->start, lead, front);
  insert_free(heap.pages, front);
  return carve(heap, s, npages);
}

}  // namespace

Span* page_alloc(HeapState& heap, std::size_t npages, Reclaim reclaim, std::size_t align,
                 bool small_objects) {
  // Any run of this many pages holds `npages` pages starting at a multiple of `align`.
  const std::size_t need = npages + (align >> page_shift) - 1;
  const unsigned kind = small_objects && arena_wants_huge(heap, arena_size_for(heap, need)) ? 1 : 0;
  {
    LockGuard g(heap.pages.mu);
    if (Span* s = find_free(heap.pages, kind, need)) return carve_aligned(heap, s, npages, align);
  }
  // Sweep on demand before growing: sweeping may free runs that fit (Go's mheap.reclaim). Bounded
  // like cache_span's budget: the caller holds a P, so a stop-the-world waits for this loop, and
  // unbounded it could sweep the whole heap first; the rest is left to sweepers and termination.
  for (int budget = page_sweep_budget; budget > 0 && reclaim(heap, SweepKind::on_demand);
       budget--) {
    LockGuard g(heap.pages.mu);
    if (Span* s = find_free(heap.pages, kind, need)) return carve_aligned(heap, s, npages, align);
  }
  LockGuard g(heap.pages.mu);
  if (Span* s = find_free(heap.pages, kind, need)) return carve_aligned(heap, s, npages, align);
  if (!grow(heap, kind, need)) return nullptr;
  Span* s = find_free(heap.pages, kind, need);
  return s != nullptr ? carve_aligned(heap, s, npages, align) : nullptr;
}

void page_free(HeapState& heap, Span* s) {
  const std::uint32_t sg = heap.sg();
  protocol_point(heap, ProtocolPoint::page_free_begin);
  SPANHEAP_CHECK(&heap, s->state.load(std::memory_order_relaxed) == SpanState::in_use,
                 "page_free of a span that is not in use (C23)");
  SPANHEAP_CHECK(&heap, s->alloc_count == 0, "page_free of a span with live objects (C23)");
  SPANHEAP_CHECK(&heap, s->sweepgen.load(std::memory_order_relaxed) == sg - 1,
                 "page_free of a span its caller's sweep does not own (C23)");
  SPANHEAP_DCHECK(&heap, s->list.load(std::memory_order_relaxed) == nullptr,
                  "page_free of a span still in a list");
  if (s->is_large()) {
    // Its one object, which is the whole span, was poisoned when it was freed (heap_free): a
    // second pass here doubled the shadow writes of every large free. Check the ends instead.
    SPANHEAP_DCHECK(
        &heap,
        poisoned_or_unchecked(heap, reinterpret_cast<void*>(s->start)) &&
            poisoned_or_unchecked(heap, reinterpret_cast<void*>(s->start + s->bytes() - 1)),
        "page_free of a large span whose object is not poisoned");
  } else {
    poison_memory(heap, reinterpret_cast<void*>(s->start), s->bytes());
  }
  LockGuard g(heap.pages.mu);
  count_pages(heap, heap.pages.in_use_pages, 0, s->npages);
  if (heap.options.reuse == ReusePolicy::owner) pacer_credit_pages(heap, s->npages);
  count_pages(heap, heap.pages.free_pages, s->npages, 0);
  set_history(heap, *s->arena, s->start, s->npages, PageHistory::freed);
  s->state.store(SpanState::free, std::memory_order_release);
  s->free_since = heap.counters.cycles.load(std::memory_order_relaxed);
  s->need_zero.store(true, std::memory_order_relaxed);
  s->released = false;
  s->nelems = 0;
  coalesce_and_insert(heap, s);
  // T4 last: a free span rests at sg. A freer that loads it (acquire) sees state free (or dead,
  // when a larger neighbour absorbed it) and the page history; until then it sees sg-1 and waits
  // in ensure_swept. The struct is still ours under the lock even when recycled.
  s->sweepgen.store(sg, std::memory_order_release);
}

void page_scavenge(HeapState& heap, std::uint64_t cycle) {
  // A paced heap keeps free pages up to its retained goal: releasing memory it will allocate
  // again before the next cycle only costs a page fault per page (large objects freed and
  // allocated between cycles paid one on every allocation). Without a goal (gc_percent = 0 and
  // no memory limit) idle time alone decides, as it does for pages past the goal.
  // The heap's size at the bump is what its spans occupy, fragmentation included (Go's
  // heapInUse), when that exceeds the bytes its objects hold.
  const std::uint64_t in_use =
      std::uint64_t{heap.pages.in_use_pages.load(std::memory_order_relaxed)} * page_size;
  const std::uint64_t goal =
      retained_goal(std::max(in_use, heap.pacer.live_at_bump.load(std::memory_order_relaxed)),
                    heap.pacer.trigger.load(std::memory_order_relaxed));
  LockGuard g(heap.pages.mu);
  auto retained = [&] {
    const std::uint64_t committed = heap.pages.committed_bytes.load(std::memory_order_relaxed);
    const std::uint64_t released = heap.pages.released_bytes.load(std::memory_order_relaxed);
    return committed > released ? committed - released : 0;
  };
  auto scan = [&](SpanList& list) REQUIRES(heap.pages.mu) {
    for (Span* s = list.first; s != nullptr; s = s->next) {
      if (goal != 0 && retained() <= goal) return;
      if (s->released || cycle - s->free_since < heap.options.release_after_cycles) continue;
      // In an arena of huge pages a run that holds no whole huge page stays: releasing it would
      // split the huge pages it shares with spans in use (costing their TLB reach), and the
      // kernel's khugepaged collapses a huge page that has any page present back in whole,
      // faulting the released pages in again unseen. A run that holds one is released whole.
      if (s->arena->huge &&
          round_up(s->start, huge_page_size) + huge_page_size > s->start + s->bytes())
        continue;
      heap.os->release(reinterpret_cast<void*>(s->start), s->bytes());
      s->released = true;
      s->need_zero.store(false, std::memory_order_relaxed);
      heap.pages.released_bytes.fetch_add(s->bytes(), std::memory_order_relaxed);
    }
  };
  for (unsigned kind = 0; kind < page_kinds; kind++) {
    for (SpanList& list : heap.pages.free_runs[kind]) scan(list);
    scan(heap.pages.free_long[kind]);
  }
}

void page_heap_destroy(HeapState& heap) NO_THREAD_SAFETY_ANALYSIS {
  // An OS layer that keeps poison takes the arenas back poisoned. With poison_freed every free
  // run is poisoned already, so only a heap that still holds spans (or does not poison) makes a
  // pass over the shadow here; the fuzz executor tears an empty heap down after every input.
  const bool keeps = os_keeps_poison(heap);
  const bool all_poisoned = heap.options.debug.poison_freed &&
                            heap.pages.in_use_pages.load(std::memory_order_relaxed) == 0;
  for (Arena* a = heap.pages.arenas; a != nullptr;) {
    Arena* next = a->next;
    registry_remove(a);
    auto* base = reinterpret_cast<void*>(a->base);
    const std::size_t committed = a->committed_pages << page_shift;
    if (!keeps) {
      unpoison_memory(heap, base, committed);
    } else if (!all_poisoned) {
      poison_for_os(heap, base, committed);
    }
    heap.os->unreserve(base, a->npages << page_shift);
    unreserve_meta(heap, a);
    a = next;
  }
  heap.pages.arenas = nullptr;
  for (PageHeap::Chunk* c = heap.pages.chunks; c != nullptr;) {
    PageHeap::Chunk* next = c->next;
    void* chunk = c->base;
    const std::size_t size = c->size;
    poison_for_os(heap, chunk, size);  // the whole chunk is committed, and *c lives in it
    heap.os->unreserve(chunk, size);
    c = next;
  }
  heap.pages.chunks = nullptr;
}

}  // namespace spanheap::detail
