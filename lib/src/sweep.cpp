// sweep: see sweep.hpp.
#include "sweep.hpp"

#include "central.hpp"
#include "heap_state.hpp"
#include "page_heap.hpp"
#include "report.hpp"
#include "span.hpp"

namespace spanheap::detail {

SweepOwner try_acquire(HeapState& heap, Central& central, Span* span) {
  const std::uint32_t sg = heap.sg();
  const unsigned u = unswept_index(sg);
  SpanList* list = span->list.load(std::memory_order_relaxed);
  if (list != &central.partial[u] && list != &central.full[u]) return SweepOwner{};
  if (span->sweepgen.load(std::memory_order_acquire) != sg - 2) return SweepOwner{};
  // Register before the CAS: "sweep done" readers see unswept == 0 only after some owner's CAS,
  // and that owner is already counted active (Go 1.17's sweepLocker).
  heap.sweep.active.fetch_add(1, std::memory_order_seq_cst);
  std::uint32_t expected = sg - 2;
  if (!span->sweepgen.compare_exchange_strong(expected, sg - 1, std::memory_order_acq_rel)) {
    heap.sweep.active.fetch_sub(1, std::memory_order_seq_cst);
    return SweepOwner{};
  }
  heap.sweep.unswept.fetch_sub(1, std::memory_order_seq_cst);
  list_remove(*list, span);
  return SweepOwner(span);
}

namespace {

// The one body behind the entry points below: `preserve` leaves the span in no list for the
// caller to cache, `stale` marks a flush-time sweep (not counted active), `keep_empty` keeps an
// emptied small span on its central list.
bool sweep(HeapState& heap, SweepOwner owner, SweepKind kind, bool preserve, bool stale,
           bool keep_empty) {
  Span* s = owner.span();
  const std::uint32_t sg = heap.sg();
  SPANHEAP_CHECK(&heap,
                 s->state.load(std::memory_order_relaxed) == SpanState::in_use &&
                     s->sweepgen.load(std::memory_order_relaxed) == sg - 1,
                 "mspan.sweep: bad span state (C17)");
  SPANHEAP_DCHECK(&heap, s->list.load(std::memory_order_relaxed) == nullptr,
                  "sweeping a span that is still listed");
  if (SPANHEAP_UNLIKELY(heap.protocol_hook != nullptr))
    heap.protocol_hook(ProtocolPoint::sweep_owned);
  std::uint64_t freed[bitmap_words];
  const std::uint32_t nfreed = sweep_bits(heap, *s, freed);
  heap.counters.reclaimed_objects.fetch_add(nfreed, std::memory_order_relaxed);
  heap.counters.reclaimed_bytes.fetch_add(std::uint64_t{nfreed} * s->elem_size,
                                          std::memory_order_relaxed);
  heap.counters.swept[static_cast<unsigned>(kind)].fetch_add(1, std::memory_order_relaxed);
  heap.sweep.pages_swept.fetch_add(s->npages, std::memory_order_relaxed);

  // keep_empty only matters for small spans: a large span's one object classifies the same
  // either way (reclaimed slot or released pages: double_free), and large spans stay "full".
  const bool release_span = !preserve && s->alloc_count == 0 && !(keep_empty && !s->is_large());
  if (nfreed != 0 && !release_span) scrub_reclaimed(heap, *s, freed);
  if (release_span) {
    // T8 with T4 last: page_free publishes sg only after its final write to the span. At sg a
    // freer skips ensure_swept and reads nelems/start, which page_free and coalescing rewrite.
    page_free(heap, s);
  } else if (preserve) {
    s->sweepgen.store(sg, std::memory_order_release);  // the caller (cache_span) caches it
  } else {
    Central& central = heap.central[s->cls()];
    LockGuard g(central.mu);
    central_put_swept(heap, central, s);
  }
  if (!stale) heap.sweep.active.fetch_sub(1, std::memory_order_seq_cst);
  return release_span;
}

}  // namespace

bool sweep_span(HeapState& heap, SweepOwner owner, SweepKind kind) {
  return sweep(heap, std::move(owner), kind, /*preserve=*/false, /*stale=*/false,
               /*keep_empty=*/false);
}

void sweep_for_cache(HeapState& heap, SweepOwner owner) {
  sweep(heap, std::move(owner), SweepKind::on_demand, /*preserve=*/true, /*stale=*/false,
        /*keep_empty=*/false);
}

bool sweep_for_free(HeapState& heap, SweepOwner owner) {
  return sweep(heap, std::move(owner), SweepKind::by_free, /*preserve=*/false, /*stale=*/false,
               /*keep_empty=*/true);
}

bool sweep_stale(HeapState& heap, SweepOwner owner, bool keep_empty) {
  return sweep(heap, std::move(owner), SweepKind::by_flush, /*preserve=*/false, /*stale=*/true,
               keep_empty);
}

}  // namespace spanheap::detail
