// stats: see stats.hpp.
#include "stats.hpp"

#include <algorithm>
#include <iterator>

#include "heap_state.hpp"
#include "popcount.hpp"
#include "size_classes.hpp"

namespace spanheap::detail {

namespace {
struct ProcTotals {
  std::uint64_t allocs = 0, alloc_bytes = 0, frees = 0, free_bytes = 0;
  std::uint64_t collections = 0, collected_objects = 0, collected_bytes = 0;
  std::uint64_t large_frees = 0, large_freed_bytes = 0;
  // Everything reclaimed: by sweeps (HeapCounters), and by collections and large frees (per P).
  std::uint64_t reclaimed_objects = 0, reclaimed_bytes = 0;
};
// The free slots in the alloc caches of every P's current spans: counted as allocations when
// their words entered the caches (Cache::allocs), handed out by none yet. Racy (another P may be
// handing them out, or its span may leave its cache meanwhile) and exact when no P is in a call.
// The class's object size, not the span's: a span struct read racily may be reinitialised
// meanwhile.
struct Reserved {
  std::uint64_t objects = 0, bytes = 0;
};
Reserved reserved_in_caches(const HeapState& heap) {
  Reserved r;
  for (unsigned w = 0; w < std::size(heap.classes_used); w++) {
    // A class's spans exist only once its bit is set, and a P caches only such spans.
    for (std::uint64_t bits = heap.classes_used[w].load(std::memory_order_relaxed); bits != 0;
         bits &= bits - 1) {
      const unsigned c = w * 64 + static_cast<unsigned>(__builtin_ctzll(bits));
      if (c == 0 || c >= num_size_classes()) continue;
      const std::uint64_t size = size_class(c).size;
      // The sweepers' slots (past nprocs) never cache a span, and an empty alloc cache (no span
      // of the class: the common case) needs no count. stats() runs after every step of the fuzz
      // executor, and at every cycle for the pacer.
      for (unsigned i = 0; i < heap.nprocs; i++) {
        const Span* s = heap.procs[i].cache.alloc[c].load(std::memory_order_acquire);
        const std::uint64_t cached = s->alloc_cache.load(std::memory_order_relaxed);
        if (cached == 0) continue;
        const unsigned n = count_word(cached);
        r.objects += n;
        r.bytes += n * size;
      }
    }
  }
  return r;
}

ProcTotals proc_totals(const HeapState& heap) {
  ProcTotals t;
  for (unsigned i = 0; i < heap.nslots; i++) {
    const Cache& c = heap.procs[i].cache;
    t.allocs += c.allocs.load(std::memory_order_relaxed);
    t.alloc_bytes += c.alloc_bytes.load(std::memory_order_relaxed);
    t.frees += c.frees.load(std::memory_order_relaxed);
    t.free_bytes += c.free_bytes.load(std::memory_order_relaxed);
    t.collections += c.collections.load(std::memory_order_relaxed);
    t.collected_objects += c.collected_objects.load(std::memory_order_relaxed);
    t.collected_bytes += c.collected_bytes.load(std::memory_order_relaxed);
    t.large_frees += c.large_frees.load(std::memory_order_relaxed);
    t.large_freed_bytes += c.large_freed_bytes.load(std::memory_order_relaxed);
  }
  const Reserved reserved = reserved_in_caches(heap);
  t.allocs -= std::min(t.allocs, reserved.objects);
  t.alloc_bytes -= std::min(t.alloc_bytes, reserved.bytes);
  t.reclaimed_objects = heap.counters.reclaimed_objects.load(std::memory_order_relaxed) +
                        t.collected_objects + t.large_frees;
  t.reclaimed_bytes = heap.counters.reclaimed_bytes.load(std::memory_order_relaxed) +
                      t.collected_bytes + t.large_freed_bytes;
  // A double free whose two frees raced was counted by both; one of them freed nothing.
  t.frees -= std::min(t.frees, heap.counters.raced_double_frees.load(std::memory_order_relaxed));
  t.free_bytes -=
      std::min(t.free_bytes, heap.counters.raced_double_free_bytes.load(std::memory_order_relaxed));
  return t;
}
}  // namespace

std::uint64_t pending_bytes(const HeapState& heap) {
  const ProcTotals t = proc_totals(heap);
  return t.free_bytes > t.reclaimed_bytes ? t.free_bytes - t.reclaimed_bytes : 0;
}

std::uint64_t surviving_bytes(const HeapState& heap) {
  const ProcTotals t = proc_totals(heap);
  return t.alloc_bytes > t.free_bytes ? t.alloc_bytes - t.free_bytes : 0;
}

Stats collect_stats(const HeapState& heap) {
  Stats s;
  const HeapCounters& c = heap.counters;
  const ProcTotals t = proc_totals(heap);
  const std::uint64_t rec_objects = t.reclaimed_objects;
  const std::uint64_t rec_bytes = t.reclaimed_bytes;
  s.cycles = c.cycles.load(std::memory_order_relaxed);
  s.sweepgen = heap.sg();
  // Racy reads can momentarily see a reclaim before the matching allocation count; clamp.
  s.live_objects = t.allocs > rec_objects ? t.allocs - rec_objects : 0;
  s.live_bytes = t.alloc_bytes > rec_bytes ? t.alloc_bytes - rec_bytes : 0;
  s.pending_frees = t.frees > rec_objects ? t.frees - rec_objects : 0;
  s.allocations = t.allocs;
  s.frees = t.frees;
  const PageHeap& ph = heap.pages;
  s.span_bytes = ph.in_use_pages.load(std::memory_order_relaxed) * page_size;
  const std::size_t committed = ph.committed_bytes.load(std::memory_order_relaxed);
  s.released_bytes = ph.released_bytes.load(std::memory_order_relaxed);
  s.mapped_bytes = committed > s.released_bytes ? committed - s.released_bytes : 0;
  s.reserved_bytes = ph.reserved_bytes.load(std::memory_order_relaxed);
  s.metadata_bytes = ph.meta_bytes.load(std::memory_order_relaxed);
  const std::uint64_t trigger = heap.pacer.trigger.load(std::memory_order_relaxed);
  s.next_trigger =
      trigger == 0
          ? 0
          : s.live_bytes +
                (trigger - std::min(trigger, heap.pacer.allocated.load(std::memory_order_relaxed)));
  s.pause_last_ns = c.pause_last_ns.load(std::memory_order_relaxed);
  s.pause_max_ns = c.pause_max_ns.load(std::memory_order_relaxed);
  s.pause_total_ns = c.pause_total_ns.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < pause_buckets; i++)
    s.pause_histogram[i] = c.pause_histogram[i].load(std::memory_order_relaxed);
  s.flushes_lazy = c.flushes_lazy.load(std::memory_order_relaxed);
  s.flushes_barrier = c.flushes_barrier.load(std::memory_order_relaxed);
  s.flushes_eager = c.flushes_eager.load(std::memory_order_relaxed);
  auto swept = [&](SweepKind k) {
    return c.swept[static_cast<unsigned>(k)].load(std::memory_order_relaxed);
  };
  s.swept_background = swept(SweepKind::background);
  s.swept_proportional = swept(SweepKind::proportional);
  s.swept_on_demand = swept(SweepKind::on_demand) + swept(SweepKind::by_free);
  s.swept_by_flush = swept(SweepKind::by_flush);
  s.swept_termination = swept(SweepKind::termination);
  s.collections = t.collections;
  s.collected_objects = t.collected_objects;
  s.large_frees = t.large_frees;
  s.revocations = c.revocations.load(std::memory_order_relaxed);
  s.errors = c.errors.load(std::memory_order_relaxed);
  return s;
}

}  // namespace spanheap::detail
