// central: see central.hpp.
#include "central.hpp"

#include "heap_state.hpp"
#include "page_heap.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "span.hpp"
#include "sweep.hpp"

namespace spanheap::detail {
namespace {

// How many unswept spans cache_span sweeps looking for a free slot before it grows the heap
// instead (Go's spanBudget = 100): bounds the latency of one refill.
constexpr int span_budget = 100;

}  // namespace

Span* cache_span(HeapState& heap, Cache& by, Central& central) {
  const unsigned cls = central.span_class;
  const SizeClass& sc = size_class(cls);
  deduct_sweep_credit(heap, std::size_t{sc.npages} << page_shift);
  const std::uint32_t sg = heap.sg();
  Span* span = nullptr;
  {
    LockGuard g(central.mu);
    span = list_pop_front(central.partial[swept_index(sg)]);
  }
  // T9b: the span is in no list and no cache; collect the frees it gathered while in central.
  if (span != nullptr && heap.options.reuse == ReusePolicy::owner) span_collect(heap, by, *span);
  // Sweep unswept spans of this class on demand: partial ones always have a free slot after the
  // sweep; full ones may turn out to have one.
  for (int budget = span_budget; span == nullptr && budget > 0; budget--) {
    SweepOwner owner;
    {
      LockGuard g(central.mu);
      owner = central_take_unswept(heap, central, true);
      if (!owner) owner = central_take_unswept(heap, central, false);
    }
    if (!owner) break;
    Span* s = owner.span();
    sweep_for_cache(heap, std::move(owner));
    if (s->alloc_count < s->nelems) {
      span = s;
    } else {
      LockGuard g(central.mu);
      central_put_swept(heap, central, s);
    }
  }
  if (span == nullptr) {
    span = page_alloc(heap, sc.npages, sweep_one, page_size, /*small_objects=*/true);
    if (span == nullptr) return nullptr;
    span_init_small(*span, cls);
    heap.classes_used[cls / 64].fetch_or(std::uint64_t{1} << (cls % 64), std::memory_order_relaxed);
  }
  // Position the allocation cache at the first free slot without ever publishing a free slot as
  // allocated (the free_index only moves forward within a cycle; see free()).
  const std::uint32_t fi = first_free_slot(*span, span->free_index.load(std::memory_order_relaxed));
  SPANHEAP_CHECK(&heap, fi < span->nelems && span->alloc_count < span->nelems,
                 "cache_span: span has no free objects (C11)");
  span->free_index.store(fi, std::memory_order_release);
  refill_alloc_cache(*span, fi / 64);
  span->alloc_cache.store(span->alloc_cache.load(std::memory_order_relaxed) >> fi % 64,
                          std::memory_order_relaxed);
  // Pacing (Go's heap_live): the free bytes handed to a cache count as allocated. Under
  // ReusePolicy::owner the page heap charges the pages it hands out instead (Pacer::allocated):
  // slots reclaimed without a cycle are reused memory, and counting them would run cycles that an
  // explicit-free heap does not need.
  if (heap.options.reuse == ReusePolicy::next_cycle)
    heap.pacer.allocated.fetch_add(
        std::uint64_t{span->nelems - span->alloc_count} * span->elem_size,
        std::memory_order_relaxed);
  return span;
}

void uncache_span(HeapState& heap, Central& central, Span* span, bool keep_empty) {
  const std::uint32_t sg = heap.sg();
  const std::uint32_t g = span->sweepgen.load(std::memory_order_relaxed);
  SPANHEAP_CHECK(&heap, g == sg + 1 || g == sg + 3, "uncache_span of a span that is not cached");
  SPANHEAP_DCHECK(&heap, span->alloc_count > 0, "uncaching span with alloc_count == 0 (C12)");
  std::uint64_t raced[bitmap_words];
  unsigned nraced;
  {
    // The other Ps' frees join the owner's before anyone else may write `free` (INV-S6).
    SpanLock lock(*span);
    nraced = merge_remote_frees(*span, raced);
    span->set_cache_owner(-1);
  }
  if (SPANHEAP_UNLIKELY(nraced != 0)) report_raced_double_frees(heap, *span, raced, nraced);
  if (g == sg + 1) {
    // Stale (T3): the cache's owner is the only one who may touch it; it enters sg-1 by a plain
    // store, not a CAS, and is swept right here, which puts it on the right list or frees it.
    span->sweepgen.store(sg - 1, std::memory_order_release);
    sweep_stale(heap, SweepOwner(span), keep_empty);
    return;
  }
  LockGuard g2(central.mu);
  central_put_swept(heap, central, span);  // T6
}

std::size_t central_count(Central& central, unsigned index) NO_THREAD_SAFETY_ANALYSIS {
  return central.partial[index].count + central.full[index].count;
}

}  // namespace spanheap::detail
