// free: see free.hpp.
#include "free.hpp"

#include "cache.hpp"
#include "central.hpp"
#include "page_heap.hpp"
#include "page_map.hpp"
#include "poison.hpp"
#include "span.hpp"
#include "stats.hpp"
#include "sweep.hpp"
#include "sweeper.hpp"

namespace spanheap::detail {
namespace {

bool fail_free(FreeResult& out, ErrorKind kind, const char* cause, const Span* s = nullptr,
               std::size_t offset = 0) {
  out.verdict = FreeVerdict::error;
  out.kind = kind;
  out.cause = cause;
  if (s != nullptr) {
    out.span = s->start;
    out.cls = s->cls();
    out.size = s->elem_size;
  }
  out.offset = offset;
  return false;
}

// Counts the valid free of the object at `addr`, whose pending bit this free has just set, and
// poisons it. Requires: the slot still this free's to touch — the freeing P caches the span, or
// the caller holds free_lock — since once the owner may collect it, it may hand it out again.
void record_free(HeapState& heap, ProcState& p, const Span& s, std::uintptr_t addr) {
  bump(p.cache.frees, 1);
  bump(p.cache.free_bytes, s.elem_size);
  poison_memory(heap, reinterpret_cast<void*>(addr), s.elem_size);
}

// Who records a free: the P caching the span (no lock), or any other P holding free_lock.
enum class Freer : std::uint8_t { owner, locked };

// Classifies `addr` against a span that is swept for this cycle and records the free. The owner
// sets the slot's bit in `free` without a lock (owner_mark_pending); a free under free_lock sets
// it with a plain load and store too (test_and_set_bit_locked) — in `remote` when another P caches
// the span, so that of two such frees of one object the lock lets exactly one win, and one racing
// with the owner's is found by the merge.
// Requires: the caller owns the span's object state against collection — its P caches the span,
// or it holds free_lock — and holds a P (no sweep can start).
bool mark_free(HeapState& heap, ProcState& p, Span* s, std::uintptr_t addr, Freer freer,
               FreeResult& out) {
  if (addr >= s->limit()) {
    return fail_free(out, ErrorKind::invalid_free,
                     "pointer into the tail of a span, past its last object", s, addr - s->start);
  }
  const std::uint32_t i = slot_of(*s, addr);
  const std::uintptr_t base = s->start + i * s->elem_size;
  if (!slot_allocated(*s, i)) {
    if (addr == base && slot_reclaimed(*s, i)) {
      return fail_free(out, ErrorKind::double_free,
                       "object already freed and reclaimed (by a sweep or a collection)", s, 0);
    }
    return fail_free(out, ErrorKind::invalid_free,
                     addr == base ? "free slot that holds no object" : "pointer into a free slot",
                     s, addr - base);
  }
  if (addr != base) {
    return fail_free(out, ErrorKind::interior_free, "pointer into the middle of a live object", s,
                     addr - base);
  }
  SPANHEAP_DCHECK(&heap, freer == Freer::owner || s->free_lock.load(std::memory_order_relaxed),
                  "a free that does not own the span without free_lock (types.hpp)");
  bool pending;
  if (freer == Freer::owner) {
    pending = owner_mark_pending(*s, i);
  } else if (s->cache_owner() < 0) {
    pending = test_and_set_bit_locked(s->bits[i / 64].free, i % 64);
  } else {
    pending = remote_mark_pending(*s, i);  // another P caches the span: its frees are in `free`
  }
  if (pending) {
    return fail_free(out, ErrorKind::double_free,
                     "object already freed, not yet reclaimed (pending)", s, 0);
  }
  record_free(heap, p, *s, base);
  return true;
}

// After a free into a span that sits on its class's swept full list (ReusePolicy::owner): move it
// to the partial list, so that the next refill of the class collects it instead of growing.
void move_to_partial(HeapState& heap, Span* s) {
  Central& central = heap.central[s->cls()];
  const unsigned i = swept_index(heap.sg());
  LockGuard g(central.mu);
  // Decide again under central's lock. Between our free_lock and this lock another free may have
  // moved the span, a refill collected and cached it, and its owner filled and returned it to the
  // full list with nothing pending: the list check alone would then put a full span with nothing
  // to collect on the partial list (INV-L3), and the refill that takes it finds no slot (C11).
  // While the span sits on the swept full list nothing collects it, so its pending frees only
  // grow and this answer stays right until a refill pops it under this lock.
  if (s->list.load(std::memory_order_relaxed) != &central.full[i] || !worth_collecting(*s)) return;
  list_remove(central.full[i], s);
  list_push_back(central.partial[i], s);
}

// T10 (ReusePolicy::owner): the free that set a large object's free bit returns its span to the
// page heap at once. Later frees of the object see the bit (double_free) until the span's state
// changes under free_lock, and freed pages after that (double_free by page history).
void free_large_span(HeapState& heap, ProcState& p, Span* s) {
  Central& central = heap.central[0];
  {
    LockGuard g(central.mu);
    SpanList* list = s->list.load(std::memory_order_relaxed);
    SPANHEAP_CHECK(&heap, list == &central.full[swept_index(heap.sg())],
                   "large span freed at free() is not on the swept large list (T10)");
    list_remove(*list, s);
  }
  SpanLock lock(*s);
  // The span is in no list and its one object is ours: we own it as a sweep would (sg -> sg-1 by
  // a store, like T3's stale flush). page_free publishes sg after its last write; a freer that sees
  // sg-1 meanwhile waits in ensure_swept, one holding free_lock sees the state change.
  s->sweepgen.store(heap.sg() - 1, std::memory_order_release);
  s->bits[0].free.store(0, std::memory_order_relaxed);
  s->alloc_count = 0;
  bump(p.cache.large_frees, 1);  // reclaimed as well (stats.cpp)
  bump(p.cache.large_freed_bytes, s->elem_size);
  page_free(heap, s);
}

}  // namespace

// The body of free(), with a P held. Makes the span swept for this cycle first, so the object
// state it reads and writes cannot race with a sweep (Go's ensureSwept).
bool free_with_proc(HeapState& heap, ProcState& p, const Arena& arena, std::uintptr_t addr,
                    FreeResult& out) {
  const std::size_t page = (addr - arena.base) >> page_shift;
  if (page >= arena.table_pages.load(std::memory_order_acquire))  // tables are committed lazily
    return fail_free(out, ErrorKind::invalid_free,
                     "pointer into free pages that never held an object");
  for (;;) {
    Span* s = arena.spans[page].load(std::memory_order_acquire);
    if (s == nullptr || s->state.load(std::memory_order_acquire) != SpanState::in_use) {
      if (page_history(arena, page) == PageHistory::freed) {
        return fail_free(out, ErrorKind::double_free,
                         "object already freed: its span was reclaimed and its pages are free");
      }
      return fail_free(out, ErrorKind::invalid_free,
                       "pointer into free pages that never held an object");
    }
    const std::uint32_t g = s->sweepgen.load(std::memory_order_acquire);
    const std::uint32_t sg = heap.sg();
    // Our own cached span: only this P collects it, so the slot check needs no lock.
    if (g == sg + 3 && s->cache_owner() == static_cast<int>(p.index))
      return mark_free(heap, p, s, addr, Freer::owner, out);
    if (SPANHEAP_UNLIKELY(g != sg && g != sg + 3) && !ensure_swept(heap, s, &p)) continue;
    // Swept for this cycle, and we hold a P: nothing can sweep this span until we release it.
    // Under free_lock no collection runs either; confirm the page still maps to the span (the
    // struct may have been freed and recycled meanwhile).
    bool to_partial = false;
    {
      SpanLock lock(*s);
      if (arena.spans[page].load(std::memory_order_acquire) != s ||
          s->state.load(std::memory_order_acquire) != SpanState::in_use)
        continue;
      if (!mark_free(heap, p, s, addr, Freer::locked, out) ||
          heap.options.reuse != ReusePolicy::owner)
        return out.verdict == FreeVerdict::ok;
      if (s->is_large()) {
        to_partial = false;
      } else {
        const SpanList* list = s->list.load(std::memory_order_relaxed);
        to_partial = list == &heap.central[s->cls()].full[swept_index(sg)] && worth_collecting(*s);
      }
    }
    if (s->is_large()) {
      free_large_span(heap, p, s);
    } else if (to_partial) {
      protocol_point(heap, ProtocolPoint::free_move_to_partial);
      move_to_partial(heap, s);
    }
    return true;
  }
}

bool free_into_cached_span(HeapState& heap, ProcState& p, const Arena& arena, std::size_t page,
                           Span& s, std::uintptr_t addr) {
  const std::uint32_t owner = s.owner_word.load(std::memory_order_relaxed) & Span::owner_none;
  const std::uint32_t sg = heap.sg();
  // No P caches the span (central's, or a large one): the general path, which also moves a span
  // on central's full list to its partial list. A cached span at sg+1 belongs to a stale P: the
  // general path waits for or helps its flush. A stale freeing P (taken with a CAS) flushes first
  // in free_holding.
  if (owner == Span::owner_none || s.sweepgen.load(std::memory_order_acquire) != sg + 3 ||
      cache_is_stale(sg, p.cache))
    return false;
  if (owner == p.index) {
    // Our own span at sg+3: only we collect it, so no lock (free_with_proc's owner path); the
    // remote flag is set, so the slot's remote bit is tested too.
    const std::uint32_t i = object_slot(s, addr);
    if (!slot_allocated(s, i) || owner_mark_pending(s, i)) return false;
    record_free(heap, p, s, addr);
  } else {
    protocol_point(heap, ProtocolPoint::remote_free_before_lock);
    SpanLock lock(s);
    // Under free_lock no collection runs and cache_owner does not change. Meanwhile the owner
    // may have uncached the span, or the struct been freed and recycled for other pages: take
    // the free only if the page still maps to it and a P other than ours still caches it at
    // sg+3 (ours cannot: we hold it). A span cached by another P is swept, so no sweep can
    // change its slots while we hold a P.
    if (arena.spans[page].load(std::memory_order_acquire) != &s || s.cache_owner() < 0 ||
        s.sweepgen.load(std::memory_order_acquire) != sg + 3)
      return false;
    SPANHEAP_DCHECK(&heap, s.cache_owner() != static_cast<int>(p.index),
                    "a remote free into a span the freeing P caches");
    const std::uint32_t i = object_slot(s, addr);  // after the recheck: s.start may have changed
    if (!slot_allocated(s, i) || remote_mark_pending(s, i)) return false;
    // Counted and poisoned before the lock is released: from then on the owner may collect the
    // slot and hand it out again (a poison after that would fall on a live object), or uncache
    // the span and let its struct be recycled with another elem_size.
    record_free(heap, p, s, addr);
  }
  protocol_point(heap, ProtocolPoint::remote_free_recorded);
  return true;
}

}  // namespace spanheap::detail
