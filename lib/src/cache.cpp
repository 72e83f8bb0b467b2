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
  for (Span*& s : cache.alloc) s = &empty_span;
  cache.flush_gen.store(sg, std::memory_order_relaxed);
}

namespace {

// Go's mcache.refill: give back the full span, take a swept one with free slots from central.
bool refill(HeapState& heap, ProcState& p, unsigned c) {
  Cache& cache = p.cache;
  const std::uint32_t sg = heap.sg();
  Span* old = cache.alloc[c];
  if (old != &empty_span) {
    SPANHEAP_CHECK(&heap, old->alloc_count == old->nelems,
                   "refill of span with free space remaining (C6)");
    // C7: a P never refills (so never allocates) from a stale cache: its span must be sg+3.
    SPANHEAP_CHECK(&heap, old->sweepgen.load(std::memory_order_relaxed) == sg + 3,
                   "bad sweepgen in refill (C7)");
    uncache_span(heap, heap.central[c], old);
    cache.alloc[c] = &empty_span;
  }
  Span* span = cache_span(heap, heap.central[c]);
  if (span == nullptr) return false;
  SPANHEAP_CHECK(&heap, span->alloc_count < span->nelems, "span has no free space (C8)");
  span->cache_owner.store(static_cast<int>(p.index), std::memory_order_relaxed);
  span->sweepgen.store(sg + 3, std::memory_order_release);  // T5
  cache.alloc[c] = span;
  return true;
}

}  // namespace

void* cache_alloc_slow(HeapState& heap, ProcState& p, unsigned c) {
  Cache& cache = p.cache;
  SPANHEAP_DCHECK(&heap, !cache_is_stale(heap.sg(), cache),
                  "allocation from a stale cache (INV-G2: a P allocates only after its flush)");
  // At most: the span is full -> collect or refill -> allocate.
  for (int attempt = 0; attempt < 3; attempt++) {
    Span* s = cache.alloc[c];
    if (s != &empty_span) {
      const std::uint32_t i = next_free_index(*s);
      if (i < s->nelems) {
        s->alloc_count++;
        SPANHEAP_CHECK(&heap, s->alloc_count <= s->nelems, "s.allocCount > s.nelems (C4)");
        return reinterpret_cast<void*>(s->start + i * s->elem_size);
      }
      SPANHEAP_CHECK(&heap, s->alloc_count == s->nelems,
                     "s.allocCount != s.nelems && freeIndex == s.nelems (C2)");
      // T9a: reuse the span's own pending frees before giving it back. Only this P may: the
      // span is ours at sg+3 (checked), so no sweeper and no other P can collect it.
      if (heap.options.reuse == ReusePolicy::owner && span_has_pending(*s)) {
        SPANHEAP_DCHECK(
            &heap,
            s->sweepgen.load(std::memory_order_relaxed) == heap.sg() + 3 &&
                s->cache_owner.load(std::memory_order_relaxed) == static_cast<int>(p.index),
            "collection of a span this P does not cache (T9a)");
        if (span_collect(heap, *s) != 0) continue;
      }
    }
    if (!refill(heap, p, c)) return nullptr;
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
    Span* s = cache.alloc[c];
    if (s == &empty_span) continue;
    cache.alloc[c] = &empty_span;
    uncache_span(heap, heap.central[c], s, keep_empty);
    if (SPANHEAP_UNLIKELY(heap.protocol_hook != nullptr))
      heap.protocol_hook(testing::ProtocolPoint::flush_released_span);
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
