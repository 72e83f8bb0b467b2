// sweep: see sweep.hpp.
#include "sweep.hpp"

#include "heap_state.hpp"
#include "pacing.hpp"
#include "page_heap.hpp"
#include "report.hpp"
#include "size_classes.hpp"
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
  protocol_point(heap, ProtocolPoint::sweep_owned);
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

void central_put_swept(HeapState& heap, Central& central, Span* span) {
  const std::uint32_t sg = heap.sg();
  const unsigned i = swept_index(sg);
  if (span->alloc_count < span->nelems || span->is_large() ||
      heap.options.reuse != ReusePolicy::owner) {
    list_push_back(span->alloc_count < span->nelems ? central.partial[i] : central.full[i], span);
  } else {
    // A full span with pending frees is a refill candidate (collected by cache_span). Decided
    // under free_lock: a free that lands after this sees the span on the full list and moves it.
    SpanLock lock(*span);
    list_push_back(worth_collecting(*span) ? central.partial[i] : central.full[i], span);
  }
  span->sweepgen.store(sg, std::memory_order_release);  // T4 / T6: published after the list move
}

SweepOwner central_take_unswept(HeapState& heap, Central& central, bool partial) {
  const unsigned u = unswept_index(heap.sg());
  SpanList& list = partial ? central.partial[u] : central.full[u];
  // Every listed span is at sg-2: an owner always takes its span off the list under this lock.
  for (Span* s = list.first; s != nullptr; s = s->next) {
    if (SweepOwner owner = try_acquire(heap, central, s)) return owner;
  }
  return SweepOwner{};
}

bool sweep_one(HeapState& heap, SweepKind kind) {
  SweepState& ss = heap.sweep;
  const unsigned ncls = num_size_classes();
  while (ss.unswept.load(std::memory_order_acquire) > 0) {
    unsigned ci = ss.cursor.load(std::memory_order_acquire);
    if (ci >= 2 * ncls) return false;
    // A small class that never had a span has nothing to sweep: pass it without its lock (two
    // lists a class, every class, every cycle, were most of a small heap's lock traffic). Class
    // 0's lists hold large spans, which set no bit.
    if (ci / 2 != 0 && !heap.class_used(ci / 2)) {
      ss.cursor.compare_exchange_strong(ci, ci + 1, std::memory_order_acq_rel);
      continue;
    }
    Central& central = heap.central[ci / 2];
    SweepOwner owner;
    {
      LockGuard g(central.mu);
      owner = central_take_unswept(heap, central, ci % 2 == 0);
    }
    if (owner) {
      sweep_span(heap, std::move(owner), kind);
      return true;
    }
    ss.cursor.compare_exchange_strong(ci, ci + 1, std::memory_order_acq_rel);
  }
  return false;
}

unsigned deduct_sweep_credit(HeapState& heap, std::size_t bytes) {
  SweepState& ss = heap.sweep;
  const double ratio = ss.pages_per_byte.load(std::memory_order_relaxed);
  if (ratio <= 0.0) return 0;
  // Both counters only grow within a cycle: the debt cannot underflow (Go #57523).
  const std::uint64_t allocated =
      ss.bytes_allocated.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  const std::uint64_t target = sweep_target(ratio, allocated);
  unsigned swept = 0;
  while (ss.pages_swept.load(std::memory_order_relaxed) < target) {
    if (!sweep_one(heap, SweepKind::proportional)) {
      ss.pages_per_byte.store(0.0, std::memory_order_relaxed);
      break;
    }
    swept++;
  }
  return swept;
}

}  // namespace spanheap::detail
