// cache: see cache.hpp.
#include "cache.hpp"

#include "central.hpp"
#include "heap_state.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "span.hpp"

namespace spanheap::detail {

void cache_init(HeapState& heap, Cache& cache, std::uint32_t sg) noexcept {
  (void)heap;
  for (std::atomic<Span*>& s : cache.alloc) s.store(&empty_span, std::memory_order_relaxed);
  cache.flush_gen.store(sg, std::memory_order_relaxed);
}

namespace {

// The owned lists link spans through Span::next/prev like a SpanList, but are not one: the list
// functions of page_heap.cpp set Span::list, which must stay nullptr for an owned span (the free
// path reads it to tell a central full list, INV-L2), and keep a page count nobody needs here.
void owned_push_front(OwnedSpans& owned, Span* s) noexcept {
  s->prev = nullptr;
  s->next = owned.first;
  if (owned.first != nullptr) {
    owned.first->prev = s;
  } else {
    owned.last = s;
  }
  owned.first = s;
  owned.count++;
}

void owned_remove(OwnedSpans& owned, Span* s) noexcept {
  if (s->prev != nullptr) {
    s->prev->next = s->next;
  } else {
    owned.first = s->next;
  }
  if (s->next != nullptr) {
    s->next->prev = s->prev;
  } else {
    owned.last = s->prev;
  }
  s->next = s->prev = nullptr;
  owned.count--;
}

// Parks the current span of class c, which allocation exhausted, in the P's owned set. Past the
// bound, the span parked longest ago goes back to central (T6), on the partial list if it is
// worth collecting by then.
void park(HeapState& heap, ProcState& p, unsigned c, Span* s) {
  OwnedSpans& owned = p.cache.owned[c];
  owned_push_front(owned, s);
  if (owned.count > max_owned_spans) {
    Span* evicted = owned.last;
    owned_remove(owned, evicted);
    uncache_span(heap, heap.central[c], evicted);
  }
}

// An owned span worth collecting, taken off the owned list; nullptr when none of the `owned_scan`
// parked longest ago is. Those have had the longest time to gather frees (the P's own and other
// Ps'), so a collection yields the most slots, and a bounded look keeps a refill O(1) in the bound.
// A span looked at and not worth collecting goes to the front, as if parked now: where spans hold
// few objects, a span whose one or two long-lived objects stay would otherwise sit at the back for
// good, and every refill would take a fresh span while younger owned ones sat empty. The back is
// then the span parked or looked at longest ago, which is the one park() evicts. Pending frees only
// grow meanwhile (only this P collects its owned spans), so the collection finds them.
Span* take_owned(OwnedSpans& owned) noexcept {
  for (unsigned looked = 0; looked < owned_scan && owned.last != nullptr; looked++) {
    Span* s = owned.last;
    owned_remove(owned, s);
    if (worth_collecting(*s)) return s;
    owned_push_front(owned, s);
  }
  return nullptr;
}

// C6/C7 for a span the cache is done allocating from.
void check_exhausted(HeapState& heap, const Span* s) {
  SPANHEAP_CHECK(&heap, s->alloc_count == s->nelems,
                 "refill of span with free space remaining (C6)");
  // C7: a P never refills (so never allocates) from a stale cache: its span must be sg+3.
  SPANHEAP_CHECK(&heap, s->sweepgen.load(std::memory_order_relaxed) == heap.sg() + 3,
                 "bad sweepgen in refill (C7)");
}

// Go's mcache.refill: give back the full span (park it, under owner reuse), take a swept one with
// free slots from central.
bool refill(HeapState& heap, ProcState& p, unsigned c) {
  Cache& cache = p.cache;
  const std::uint32_t sg = heap.sg();
  Span* old = cache.alloc[c].load(std::memory_order_relaxed);
  if (old != &empty_span) {
    check_exhausted(heap, old);
    cache.alloc[c].store(&empty_span, std::memory_order_relaxed);
    if (heap.options.reuse == ReusePolicy::owner) {
      park(heap, p, c, old);
    } else {
      uncache_span(heap, heap.central[c], old);
    }
  }
  Span* span = cache_span(heap, cache, heap.central[c]);
  if (span == nullptr) return false;
  SPANHEAP_CHECK(&heap, span->alloc_count < span->nelems, "span has no free space (C8)");
  {
    // Under free_lock: a free by another P that saw the span uncached has set its bit in `free`
    // before this P starts writing `free` without a lock, and every later one sees the owner.
    SpanLock lock(*span);
    span->set_cache_owner(static_cast<int>(p.index));
  }
  span->sweepgen.store(sg + 3, std::memory_order_release);  // T5
  // Release: stats() reads the span through this pointer (its alloc cache), and a span struct just
  // built by the page heap was written by no atomic store that reader could order after.
  cache.alloc[c].store(span, std::memory_order_release);
  return true;
}

bool owns_span(HeapState& heap, const ProcState& p, const Span& s) noexcept {
  return s.sweepgen.load(std::memory_order_relaxed) == heap.sg() + 3 &&
         s.cache_owner() == static_cast<int>(p.index);
}

}  // namespace

void* cache_alloc_slow(HeapState& heap, ProcState& p, unsigned c, bool may_refill) {
  Cache& cache = p.cache;
  SPANHEAP_DCHECK(&heap, !cache_is_stale(heap.sg(), cache),
                  "allocation from a stale cache (INV-G2: a P allocates only after its flush)");
  // INV-C as the counters keep it: the slots of this alloc cache were counted when they entered
  // it, and the ones it holds now would be counted again at the exit below.
  SPANHEAP_CHECK(
      &heap,
      cache.alloc[c].load(std::memory_order_relaxed)->alloc_cache.load(std::memory_order_relaxed) ==
          0,
      "allocation slow path with slots left in the alloc cache (INV-C: they would be "
      "counted twice)");
  // At most: the span is full -> collect or refill -> allocate.
  for (int attempt = 0; attempt < 3; attempt++) {
    Span* s = cache.alloc[c].load(std::memory_order_relaxed);
    if (s != &empty_span) {
      const std::uint32_t i = next_free_index(*s);
      if (i < s->nelems) {
        s->alloc_count++;
        SPANHEAP_CHECK(&heap, s->alloc_count <= s->nelems, "s.allocCount > s.nelems (C4)");
        count_slow_allocation(cache, *s, 1);
        return reinterpret_cast<void*>(s->start + i * s->elem_size);
      }
      SPANHEAP_CHECK(&heap, s->alloc_count == s->nelems,
                     "s.allocCount != s.nelems && freeIndex == s.nelems (C2)");
    }
    if (heap.options.reuse == ReusePolicy::owner) {
      // T9a on an owned span: it becomes the current one, the exhausted one is parked. The owned
      // spans come first: parked longest ago, they have gathered frees the longest, while the
      // span just used up has had only the time it took to hand out its slots, so testing it
      // first mostly fails.
      if (Span* o = take_owned(cache.owned[c])) {
        if (s != &empty_span) {
          check_exhausted(heap, s);
          park(heap, p, c, s);
        }
        cache.alloc[c].store(o, std::memory_order_release);  // as in refill
        SPANHEAP_DCHECK(&heap, owns_span(heap, p, *o),
                        "collection of a span this P does not cache (T9a)");
        span_collect(heap, cache, *o);
        continue;
      }
      // T9a on the current span: reuse its own pending frees before giving it back. Only this P
      // may: the span is ours at sg+3 (checked), so no sweeper and no other P can collect it.
      if (s != &empty_span && worth_collecting(*s)) {
        SPANHEAP_DCHECK(&heap, owns_span(heap, p, *s),
                        "collection of a span this P does not cache (T9a)");
        if (span_collect(heap, cache, *s) != 0) continue;
      }
    }
    if (!may_refill || !refill(heap, p, c)) return nullptr;
  }
  SPANHEAP_CHECK(&heap, false, "freeIndex is not valid after refill (C3)");
  return nullptr;
}

void cache_flush(HeapState& heap, ProcState& p, FlushKind kind, bool keep_empty) {
  Cache& cache = p.cache;
  const std::uint32_t sg = heap.sg();
  const std::uint32_t fg = cache.flush_gen.load(std::memory_order_relaxed);
  SPANHEAP_CHECK(&heap, fg == sg || fg == sg - 2, "bad flush_gen (C9)");
  const unsigned ncls = num_size_classes();
  for (unsigned c = 1; c < ncls; c++) {
    // The current span, then the owned ones (a failed refill can leave owned spans behind an
    // empty current one).
    if (Span* s = cache.alloc[c].load(std::memory_order_relaxed); s != &empty_span) {
      // The free slots left in its alloc cache were counted as allocations when they entered it
      // (Cache::allocs); the span leaves with them.
      count_allocations(cache, *s, 0 - cached_slots(*s));
      cache.alloc[c].store(&empty_span, std::memory_order_relaxed);
      uncache_span(heap, heap.central[c], s, keep_empty);
      protocol_point(heap, ProtocolPoint::flush_released_span);
    }
    OwnedSpans& owned = cache.owned[c];
    while (Span* o = owned.first) {
      owned_remove(owned, o);
      uncache_span(heap, heap.central[c], o, keep_empty);
      protocol_point(heap, ProtocolPoint::flush_released_span);
    }
  }
  // Publish flush_gen only after every span went back (and stale ones were swept): whoever reads
  // flush_gen == sg (the next cycle's INV-G1 check, "sweep done") may rely on that.
  if (fg != sg) {
    cache.flush_gen.store(sg, std::memory_order_release);
    heap.sweep.stale_procs.fetch_sub(1, std::memory_order_seq_cst);
  }
  switch (kind) {
    case FlushKind::lazy:
      heap.counters.flushes_lazy.fetch_add(1, std::memory_order_relaxed);
      break;
    case FlushKind::barrier:
      heap.counters.flushes_barrier.fetch_add(1, std::memory_order_relaxed);
      break;
    case FlushKind::eager:
      heap.counters.flushes_eager.fetch_add(1, std::memory_order_relaxed);
      break;
    case FlushKind::forced:
      break;
  }
}

}  // namespace spanheap::detail
