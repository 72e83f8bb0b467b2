// validate: see validate.hpp.
#include "validate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>

#include "cache.hpp"
#include "central.hpp"
#include "heap_state.hpp"
#include "home_arena.hpp"
#include "pacing.hpp"
#include "page_heap.hpp"
#include "proc.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "span.hpp"
#include "stats.hpp"
#include "sweeper.hpp"

namespace spanheap::testing {

// Declared in spanheap/invariants.hpp and defined here, in the product library: the verifier names
// span locations in its violation messages.
const char* to_string(SpanLocation location) noexcept {
  // In the enum's order (invariants.hpp).
  static constexpr const char* names[] = {"cached",
                                          "central_partial_swept",
                                          "central_partial_unswept",
                                          "central_full_swept",
                                          "central_full_unswept",
                                          "page_heap_free",
                                          "nowhere"};
  static_assert(std::size(names) == static_cast<std::size_t>(SpanLocation::nowhere) + 1);
  const auto i = static_cast<std::size_t>(location);
  return i < std::size(names) ? names[i] : "unknown";
}

}  // namespace spanheap::testing

namespace spanheap::detail {

using testing::SpanLocation;

namespace {

template <typename... Args>
void fail(std::vector<Violation>* out, const char* id, fmt::format_string<Args...> f,
          Args&&... args) {
  if (out != nullptr) out->push_back({id, fmt::format(f, std::forward<Args>(args)...)});
}

const void* addr(const Span* s) { return reinterpret_cast<const void*>(s->start); }

// The first entry of spans[from, to) that is not `s`, or `to`: the pages of a large span (s is
// the span) or an arena's uncommitted tail (s is null). The world is stopped, so the table is
// read as plain memory a block at a time through a local copy: one sanitizer range check per
// block instead of one per entry, and a compare loop the compiler vectorizes (the tail scan
// alone, entry by entry, would cost a twentieth of a page_heap fuzz execution).
std::size_t first_not(const std::atomic<Span*>* spans, std::size_t from, std::size_t to,
                      const Span* s) {
  static_assert(sizeof(std::atomic<Span*>) == sizeof(Span*) &&
                std::atomic<Span*>::is_always_lock_free);
  static constexpr std::size_t block = 256;
  const Span* copy[block];
  while (from < to) {
    const std::size_t n = std::min(block, to - from);
    std::memcpy(copy, spans + from, n * sizeof(Span*));
    std::size_t same = 0;
    for (std::size_t i = 0; i < n; i++) same += copy[i] == s ? 1 : 0;
    if (same != n) {
      for (std::size_t i = 0; i < n; i++) {
        if (copy[i] != s) return from + i;
      }
    }
    from += n;
  }
  return to;
}

// Calls fn(c) for class 0 (large spans) when `large`, then for each small class that has ever
// had a span (HeapState::classes_used), in order. A span of any other class is in none of the
// structures walked, so the census reports it as placed nowhere.
template <class Fn>
void for_each_used_class(const HeapState& heap, bool large, Fn&& fn) {
  if (large) fn(0u);
  for (unsigned w = 0; w < std::size(heap.classes_used); w++) {
    std::uint64_t bits = heap.classes_used[w].load(std::memory_order_relaxed);
    if (w == 0) bits &= ~std::uint64_t{1};
    while (bits != 0) {
      const unsigned c = w * 64 + static_cast<unsigned>(std::countr_zero(bits));
      bits &= bits - 1;
      if (c < num_size_classes()) fn(c);
    }
  }
}

// The facts the shared span rules (testing::span_violations) judge, read from a census entry.
// Requires: world stopped.
testing::SpanFacts span_facts(HeapState& heap, const CensusEntry& e) NO_THREAD_SAFETY_ANALYSIS {
  const Span* s = e.span;
  const std::uint32_t sg = heap.sg();
  testing::SpanFacts f;
  f.base = s->start;
  f.in_use = s->state.load(std::memory_order_relaxed) == SpanState::in_use;
  f.location = e.places == 0 ? SpanLocation::nowhere : e.location;
  f.cache_proc = e.cache_proc;
  f.owned = e.owned;
  f.sweepgen_delta = static_cast<std::int32_t>(s->sweepgen.load(std::memory_order_relaxed) - sg);
  if (e.cache_proc >= 0) {
    const std::uint32_t fg = heap.proc(static_cast<unsigned>(e.cache_proc))
                                 .cache.flush_gen.load(std::memory_order_relaxed);
    f.cache_flush_gen_delta = static_cast<std::int32_t>(fg - sg);
  }
  f.large = s->is_large();
  f.nelems = s->nelems;
  f.free_index = s->free_index.load(std::memory_order_relaxed);
  f.alloc_count = s->alloc_count;
  f.owner_reuse = heap.options.reuse == ReusePolicy::owner;
  f.worth_collecting = !f.large && worth_collecting(*s);
  return f;
}

}  // namespace

const std::vector<CensusEntry>& take_census(HeapState& heap, const WorldStopped&,
                                            std::vector<Violation>* out) NO_THREAD_SAFETY_ANALYSIS {
  // Spans in address order; Span::census_index points back into it (the world is stopped).
  std::vector<CensusEntry>& where = heap.census;
  where.clear();
  where.reserve(256);
  constexpr std::uint32_t unlisted = ~0u;
  auto index_of = [&](Span* s) -> std::uint32_t {
    const std::uint32_t i = s->census_index;
    return i < where.size() && where[i].span == s ? i : unlisted;
  };
  // 1. Page tables: every committed page maps to a span covering it; spans do not overlap.
  for_each_arena(heap.pages, [&](Arena& arena) {
    for (std::size_t page = 0; page < arena.committed_pages;) {
      Span* s = arena.spans[page].load(std::memory_order_relaxed);
      const std::uintptr_t page_addr = arena.base + (page << page_shift);
      if (s == nullptr) {
        fail(out, "page_map", "committed page {:#x} maps to no span", page_addr);
        page++;
        continue;
      }
      if (s->start != page_addr || s->npages == 0 || page + s->npages > arena.committed_pages) {
        fail(out, "page_map",
             "page {:#x} maps to span [{:#x}, +{} pages) that does not start there", page_addr,
             s->start, s->npages);
        page++;
        continue;
      }
      for (std::size_t k = first_not(arena.spans, page + 1, page + s->npages, s) - page;
           k < s->npages; k = first_not(arena.spans, page + k + 1, page + s->npages, s) - page) {
        fail(out, "page_map", "span {} page {} maps elsewhere (overlap)", addr(s), k);
      }
      if (index_of(s) != unlisted) fail(out, "page_map", "span {} mapped at two places", addr(s));
      s->census_index = static_cast<std::uint32_t>(where.size());
      where.push_back(CensusEntry{s, SpanLocation::nowhere, -1, 0, false});
      page += s->npages;
    }
    if (const std::size_t page =
            first_not(arena.spans, arena.committed_pages, arena.table_pages.load(), nullptr);
        page != arena.table_pages.load()) {
      fail(out, "page_map", "uncommitted page {} of arena {:#x} maps to a span", page, arena.base);
    }
  });
  auto place = [&](Span* s, SpanLocation loc, int proc, bool owned = false) {
    const std::uint32_t i = index_of(s);
    if (i == unlisted) {
      fail(out, "INV-L1", "span {} found in {} but not in any page table", addr(s),
           testing::to_string(loc));
      return;
    }
    CensusEntry& e = where[i];
    if (e.places++ > 0) {
      fail(out, "INV-L1", "span {} is in two places: {} and {}", addr(s),
           testing::to_string(e.location), testing::to_string(loc));
    }
    e.location = loc;
    e.cache_proc = proc;
    e.owned = owned;
  };
  // 2. Central lists.
  const std::uint32_t sg = heap.sg();
  for_each_used_class(heap, /*large=*/true, [&](unsigned c) {
    Central& central = heap.central[c];
    for (unsigned idx = 0; idx < 2; idx++) {
      const bool swept = idx == swept_index(sg);
      for (int kind = 0; kind < 2; kind++) {
        SpanList& list = kind == 0 ? central.partial[idx] : central.full[idx];
        const SpanLocation loc = kind == 0 ? (swept ? SpanLocation::central_partial_swept
                                                    : SpanLocation::central_partial_unswept)
                                           : (swept ? SpanLocation::central_full_swept
                                                    : SpanLocation::central_full_unswept);
        std::size_t count = 0, pages = 0;
        for (Span* s = list.first; s != nullptr; s = s->next) {
          count++;
          pages += s->npages;
          place(s, loc, -1);
          if (s->list.load(std::memory_order_relaxed) != &list)
            fail(out, "INV-L1", "span {} on a {} list names another list", addr(s),
                 testing::to_string(loc));
          if (s->cls() != c)
            fail(out, "INV-L1", "span {} of class {} on central {}'s list", addr(s), s->cls(), c);
        }
        if (count != list.count || pages != list.pages)
          fail(out, "span_list", "central {} list count {} / pages {} but holds {} / {}", c,
               list.count, list.pages, count, pages);
      }
    }
  });
  // 3. Caches.
  for (unsigned i = 0; i < heap.nprocs; i++) {
    Cache& cache = heap.proc(i).cache;
    for_each_used_class(heap, /*large=*/false, [&](unsigned c) {
      Span* s = cache.alloc[c].load(std::memory_order_relaxed);
      if (s == &empty_span) return;
      place(s, SpanLocation::cached, static_cast<int>(i));
      if (s->cls() != c)
        fail(out, "INV-S3", "span {} of class {} cached as class {} by P{}", addr(s), s->cls(), c,
             i);
      if (s->list.load(std::memory_order_relaxed) != nullptr)
        fail(out, "INV-L2", "cached span {} is also on a list", addr(s));
      if (s->cache_owner() != static_cast<int>(i))
        fail(out, "INV-S3", "span {} cached by P{} names owner {}", addr(s), i, s->cache_owner());
    });
    // The owned sets (every class: a failed refill can leave them behind an empty current span).
    for (unsigned c = 1; c < num_size_classes(); c++) {
      const OwnedSpans& owned = cache.owned[c];
      std::uint32_t count = 0;
      const Span* prev = nullptr;
      for (Span* s = owned.first; s != nullptr && count <= max_owned_spans; s = s->next) {
        count++;
        place(s, SpanLocation::cached, static_cast<int>(i), /*owned=*/true);
        if (s->cls() != c)
          fail(out, "INV-S5", "span {} of class {} owned as class {} by P{}", addr(s), s->cls(), c,
               i);
        if (s->prev != prev) fail(out, "INV-S5", "P{}'s owned list of class {} is broken", i, c);
        if (s->list.load(std::memory_order_relaxed) != nullptr)
          fail(out, "INV-L2", "owned span {} is also on a list", addr(s));
        if (s->cache_owner() != static_cast<int>(i))
          fail(out, "INV-S5", "span {} owned by P{} names owner {}", addr(s), i, s->cache_owner());
        prev = s;
      }
      if (count != owned.count || count > max_owned_spans || owned.last != prev)
        fail(out, "INV-S5", "P{} owns {} spans of class {} (bound {}) but counts {}", i, count, c,
             max_owned_spans, owned.count);
    }
  }
  // 4. Page heap free runs.
  PageHeap& ph = heap.pages;
  auto walk_free = [&](SpanList& list, unsigned kind, std::size_t exact) {
    for (Span* s = list.first; s != nullptr; s = s->next) {
      place(s, SpanLocation::page_heap_free, -1);
      if (exact != 0 ? s->npages != exact : s->npages < free_list_exact)
        fail(out, "page_heap", "free run {} of {} pages on the wrong free list", addr(s),
             s->npages);
      if (s->arena->huge != (kind == 1))  // PageHeap: huge pages serve small objects only
        fail(out, "page_heap", "free run {} of an arena {}of huge pages on the lists of kind {}",
             addr(s), s->arena->huge ? "" : "not ", kind);
    }
  };
  // The exact lists the page heap's bitmap says are non-empty; a run on any other is placed
  // nowhere and reported, so the walk checks the bitmap as well.
  for (unsigned kind = 0; kind < page_kinds; kind++) {
    for (std::size_t w = 0; w < std::size(ph.nonempty[kind]); w++) {
      for (std::uint64_t bits = ph.nonempty[kind][w]; bits != 0; bits &= bits - 1) {
        const std::size_t n = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
        if (ph.free_runs[kind][n].first == nullptr)
          fail(out, "page_heap", "free list of {}-page runs marked non-empty but empty", n);
        walk_free(ph.free_runs[kind][n], kind, n);
      }
    }
    walk_free(ph.free_long[kind], kind, 0);
  }

  // Arenas are walked newest first; hand the census out in address order.
  std::sort(where.begin(), where.end(), [](const CensusEntry& a, const CensusEntry& b) {
    return a.span->start < b.span->start;
  });
  return where;
}

void validate_stopped(HeapState& heap, const WorldStopped& stopped,
                      std::vector<Violation>& out) NO_THREAD_SAFETY_ANALYSIS {
  validate_census(heap, take_census(heap, stopped, &out), out);
}

void validate_census(HeapState& heap, const std::vector<CensusEntry>& census,
                     std::vector<Violation>& out) NO_THREAD_SAFETY_ANALYSIS {
  const std::uint32_t sg = heap.sg();
  std::uint64_t objects = 0, bytes = 0, pending = 0, in_use_pages = 0, free_pages = 0, released = 0;
  std::uint64_t unswept_pages = 0;
  std::int64_t unswept = 0;
  const Span* prev = nullptr;
  for (const CensusEntry& e : census) {
    const Span* s = e.span;
    const SpanState state = s->state.load(std::memory_order_relaxed);
    if (state == SpanState::free || state == SpanState::in_use)
      testing::span_violations(span_facts(heap, e), out);
    // The free fast path takes "sg+3 and names this P" for "in this P's cache, so in use" and
    // reads no state: a span no cache holds names no P.
    if (e.location != SpanLocation::cached && s->cache_owner() != -1)
      fail(&out, "INV-S3", "span {} that no P caches names owner P{}", addr(s), s->cache_owner());
    if (state == SpanState::free) {
      free_pages += s->npages;
      if (s->released) released += s->bytes();
      if (prev != nullptr && prev->state.load(std::memory_order_relaxed) == SpanState::free &&
          prev->arena == s->arena && prev->start + prev->bytes() == s->start)
        fail(&out, "page_heap", "adjacent free runs {} and {} were not coalesced", addr(prev),
             addr(s));
      prev = s;
      continue;
    }
    prev = s;
    if (state != SpanState::in_use) {
      fail(&out, "INV-S1", "span {} in state {} while the world is stopped", addr(s),
           static_cast<int>(state));
      continue;
    }
    in_use_pages += s->npages;
    if (s->sweepgen.load(std::memory_order_relaxed) == sg - 2) {
      unswept++;
      unswept_pages += s->npages;
    }
    // Allocation state (INV-A2, A3; A1 is a span rule).
    const std::uint32_t fi = s->free_index.load(std::memory_order_relaxed);
    const std::uint32_t counted = count_allocated(*s);
    if (counted != s->alloc_count)
      fail(&out, "INV-A2", "span {} alloc_count {} but {} slots allocated", addr(s), s->alloc_count,
           counted);
    for (unsigned w = 0; w < bitmap_words; w++) {
      const std::uint64_t lo = w * 64;
      std::uint64_t valid = 0;
      if (s->nelems > lo) valid = s->nelems - lo >= 64 ? ~0ull : (1ull << (s->nelems - lo)) - 1;
      std::uint64_t below = 0;
      if (fi > lo) below = fi - lo >= 64 ? ~0ull : (1ull << (fi - lo)) - 1;
      const std::uint64_t ab = s->bits[w].alloc.load(std::memory_order_relaxed);
      const std::uint64_t fb = s->bits[w].free.load(std::memory_order_relaxed);
      const std::uint64_t rb = s->remote_bits[w].load(std::memory_order_relaxed);
      // Reclaimed bits too: a struct reused with fewer slots must not carry an earlier use's.
      const std::uint64_t cb = s->reclaimed_bits[w].load(std::memory_order_relaxed);
      if ((ab | fb | rb | cb) & ~valid)
        fail(&out, "INV-A2", "span {} has bits set past nelems in word {}", addr(s), w);
      if ((fb | rb) & ~(ab | below) & valid)
        fail(&out, "free_bits", "span {} has a pending free of an unallocated slot (word {})",
             addr(s), w);
      if (rb != 0 && e.location != SpanLocation::cached)
        fail(&out, "INV-S6", "span {} is not cached but holds other Ps' frees to merge (word {})",
             addr(s), w);
    }
    if (e.location == SpanLocation::cached && fi < s->nelems) {
      const std::uint32_t base = fi & ~63u;
      const std::uint64_t expect =
          ~s->bits[base / 64].alloc.load(std::memory_order_relaxed) >> (fi - base);
      const std::uint32_t valid_bits = std::min<std::uint32_t>(64 - (fi - base), s->nelems - fi);
      const std::uint64_t mask = valid_bits >= 64 ? ~0ull : (1ull << valid_bits) - 1;
      // The fast path trusts every bit it finds: one past nelems would hand out memory past the
      // span's last slot. An empty cache at a word's first slot is that word not loaded yet.
      const std::uint64_t cached = s->alloc_cache.load(std::memory_order_relaxed);
      if ((cached & ~mask) != 0)
        fail(&out, "INV-A3", "span {} alloc_cache {:#x} holds bits past its {} slots", addr(s),
             cached, s->nelems);
      else if ((expect & mask) != cached && !(fi == base && cached == 0))
        fail(&out, "INV-A3", "span {} alloc_cache {:#x} out of sync with alloc bits ({:#x})",
             addr(s), cached, expect & mask);
    }
    objects += s->alloc_count;
    bytes += std::uint64_t{s->alloc_count} * s->elem_size;
    pending += count_pending(*s);
    if (s->is_large() && (s->nelems != 1 || s->elem_size != s->bytes()))
      fail(&out, "span", "large span {} has nelems {} elem_size {}", addr(s), s->nelems,
           s->elem_size);
    if (!s->is_large()) {
      const SizeClass& sc = size_class(s->cls());
      // The slot arithmetic too: the free fast path takes object_slot's word for which slot an
      // address starts, and slot_of's is every other path's.
      if (s->elem_size != sc.size || s->nelems != sc.nelems || s->npages != sc.npages ||
          s->slot_inv != sc.slot_inv || s->slot_shift != sc.slot_shift || s->div_mul != sc.div_mul)
        fail(&out, "span", "span {} of class {} does not match the class table", addr(s), s->cls());
      if (s->limit() > s->start + s->bytes())
        fail(&out, "span", "span {} objects cross the span end", addr(s));
    }
  }
  // Ps and the sweep state.
  std::int64_t stale = 0;
  for (unsigned i = 0; i < heap.nprocs; i++) {
    const std::uint32_t fg = heap.proc(i).cache.flush_gen.load(std::memory_order_relaxed);
    testing::flush_gen_violations(i, static_cast<std::int32_t>(fg - sg), out);
    if (fg == sg - 2) stale++;
    // The stop revoked every binding and waited for each binder to leave its call, so every P
    // is idle (INV-B1, and the stop's handshake: types.hpp).
    const ProcState& p = heap.proc(i);
    const auto status = static_cast<unsigned>(settled_status(p));
    if (status != static_cast<unsigned>(ProcStatus::idle) ||
        p.binder.load(std::memory_order_relaxed) != nullptr ||
        p.entry.load(std::memory_order_relaxed) != nullptr)
      fail(&out, "INV-B1", "P{} has status {}, a binder or an entry with the world stopped", i,
           status);
  }
  const SweepState& ss = heap.sweep;
  if (ss.stale_procs.load() != stale)
    fail(&out, "sweep_state", "stale_procs counter {} but {} Ps are stale", ss.stale_procs.load(),
         stale);
  if (ss.unswept.load() != unswept)
    fail(&out, "sweep_state", "unswept counter {} but {} spans are at sg-2", ss.unswept.load(),
         unswept);
  if (ss.active.load() != 0)
    fail(&out, "INV-S2", "{} sweeps active with the world stopped", ss.active.load());
  // Stale cached spans (sg+1) are unswept too, but every one of them is in a stale P's cache.
  testing::sweep_done_violations(sweep_done(heap), static_cast<std::uint64_t>(unswept),
                                 static_cast<std::uint64_t>(stale), ss.active.load(), out);
  // Accounting.
  testing::SpanTotals totals;
  totals.objects = objects;
  totals.object_bytes = bytes;
  totals.pending_frees = pending;
  totals.in_use_bytes = in_use_pages * page_size;
  totals.released_bytes = released;
  totals.free_bytes = free_pages * page_size - released;
  testing::accounting_violations(totals, collect_stats(heap), out);
  home_arena_violations(heap, out);  // INV-H1
  // The page heap's own counter of free pages (the others are in Stats, checked above).
  if (const PageHeap& ph = heap.pages; ph.free_pages.load() != free_pages)
    fail(&out, "INV-C", "page heap free_pages {} but free runs cover {}", ph.free_pages.load(),
         free_pages);
  // Pacing.
  testing::PacingFacts pf;
  pf.eager_flush = heap.options.flush == FlushPolicy::eager;
  pf.owner_reuse = heap.options.reuse == ReusePolicy::owner;
  pf.pages_to_sweep = ss.pages_to_sweep.load();
  pf.unswept_pages = unswept_pages;
  pf.pages_swept = ss.pages_swept.load();
  for (unsigned c = 1; c < num_size_classes(); c++) pf.cache_pages += size_class(c).npages;
  // A current span and, under owner reuse, up to max_owned_spans owned ones per class and P.
  pf.cache_pages *= heap.nprocs * (pf.owner_reuse ? 1 + max_owned_spans : 1);
  pf.pages_per_byte = ss.pages_per_byte.load();
  pf.sweep_charged = ss.bytes_allocated.load();
  pf.pacer_allocated = heap.pacer.allocated.load();
  pf.span_bytes = in_use_pages * page_size;
  testing::pacing_violations(pf, out);
}

void check_cycle_preconditions(HeapState& heap, const WorldStopped& stopped) {
  std::vector<Violation> out;
  const std::vector<CensusEntry>& census = take_census(heap, stopped, &out);
  validate_census(heap, census, out);
  const std::uint32_t sg = heap.sg();
  for (const CensusEntry& e : census) {
    if (e.span->state.load(std::memory_order_relaxed) != SpanState::in_use) continue;
    const std::uint32_t g = e.span->sweepgen.load(std::memory_order_relaxed);
    if (g != sg && g != sg + 3)
      fail(&out, "INV-G1", "span {} at sg{:+d} at the bump", addr(e.span),
           static_cast<int>(g - sg));
  }
  for (const Violation& v : out)
    report(&heap, ErrorKind::corruption, nullptr, "{}: {}", v.invariant, v.message);
}

}  // namespace spanheap::detail

namespace spanheap {
// ---------------------------------------------------------------------------------------------
// The rules shared with the toolkit's oracle (spanheap/invariants.hpp).

namespace testing {

using detail::fail;

void span_violations(const SpanFacts& f, std::vector<Violation>& out) {
  const auto* at = reinterpret_cast<const void*>(f.base);
  const SpanLocation loc = f.location;
  const std::int64_t d = f.sweepgen_delta;
  if (!f.in_use) {
    if (loc == SpanLocation::nowhere)
      fail(&out, "INV-L1", "free run {} is in no structure", at);
    else if (loc != SpanLocation::page_heap_free)
      fail(&out, "INV-L4", "free run {} is {}, not on a page heap free list", at, to_string(loc));
    if (f.alloc_count != 0) fail(&out, "INV-L4", "free run {} holds {} objects", at, f.alloc_count);
    // A recycled span struct keeps its last sweepgen (DESIGN §3): an earlier sg, never a later one.
    if (d > 0 || d % 2 != 0)
      fail(&out, "INV-L4", "free run {} kept sweepgen sg{:+d}, not an earlier sg", at, d);
    return;
  }
  if (loc == SpanLocation::nowhere) fail(&out, "INV-L1", "in-use span {} is in no structure", at);
  if (loc == SpanLocation::page_heap_free)
    fail(&out, "INV-L1", "in-use span {} is on a page heap free list", at);
  if (loc != SpanLocation::cached && f.cache_proc != -1)
    fail(&out, "INV-L1", "span {} is {} but names caching P{}", at, to_string(loc), f.cache_proc);
  if (d != -2 && d != 0 && d != 1 && d != 3)
    fail(&out, "INV-S1", "span {} has sweepgen sg{:+d} with the world stopped", at, d);
  else if (f.large && d != -2 && d != 0)
    fail(&out, "INV-S1", "large span {} has sweepgen sg{:+d}: large spans are never cached", at, d);
  const bool partial =
      loc == SpanLocation::central_partial_swept || loc == SpanLocation::central_partial_unswept;
  const bool full =
      loc == SpanLocation::central_full_swept || loc == SpanLocation::central_full_unswept;
  if (loc == SpanLocation::cached) {
    const std::int64_t want = f.cache_flush_gen_delta == 0 ? 3 : 1;
    if (d != want)
      fail(&out, "INV-S3",
           "span {} cached by P{} (flush_gen sg{:+d}) has sweepgen sg{:+d}, want sg{:+d}", at,
           f.cache_proc, f.cache_flush_gen_delta, d, want);
    if (f.large) fail(&out, "INV-S1", "large span {} is cached by P{}", at, f.cache_proc);
    // INV-S5: a P parks only spans that allocation exhausted, and only it collects them.
    if (f.owned && (f.alloc_count != f.nelems || f.free_index != f.nelems))
      fail(&out, "INV-S5", "span {} owned by P{} has free slots ({} of {}, free_index {})", at,
           f.cache_proc, f.alloc_count, f.nelems, f.free_index);
  } else if (partial || full) {
    const bool swept =
        loc == SpanLocation::central_partial_swept || loc == SpanLocation::central_full_swept;
    if (d != (swept ? 0 : -2))
      fail(&out, "INV-S1", "span {} on the {} list has sweepgen sg{:+d}, want sg{:+d}", at,
           to_string(loc), d, swept ? 0 : -2);
    const bool collectable = f.owner_reuse && f.worth_collecting;
    if (partial && f.alloc_count >= f.nelems && !collectable)
      fail(&out, "INV-L3", "full span {} ({} of {}) on a partial list", at, f.alloc_count,
           f.nelems);
    if (loc == SpanLocation::central_full_swept && collectable)
      fail(&out, "INV-R1", "span {} on the swept full list is worth collecting", at);
    if (full && f.alloc_count != f.nelems)
      fail(&out, "INV-L3", "span {} with free slots ({} of {}) on a full list", at, f.alloc_count,
           f.nelems);
  }
  // An emptied span is released by its sweep; only one swept in place to judge a free (or whose
  // idle stale P was flushed for it) waits, on a central partial list, for the next cycle.
  if (f.alloc_count == 0 && !partial)
    fail(&out, "INV-L4", "in-use span {} with no object is {}, not on a partial list", at,
         to_string(loc));
  if (f.free_index > f.nelems || f.alloc_count > f.nelems)
    fail(&out, "INV-A1", "span {} free_index {} / alloc_count {} beyond nelems {}", at,
         f.free_index, f.alloc_count, f.nelems);
  else if (f.free_index > f.alloc_count)
    fail(&out, "INV-A1", "span {} free_index {} beyond its {} allocated slots (one below is free)",
         at, f.free_index, f.alloc_count);
}

void pacing_violations(const PacingFacts& p, std::vector<Violation>& out) {
  if (p.pages_per_byte > 0) {
    const std::uint64_t owed = detail::sweep_target(p.pages_per_byte, p.sweep_charged);
    if (p.pages_swept < owed)
      fail(&out, "INV-P1",
           "proportional sweep owes {} pages for {} bytes charged but {} pages were swept", owed,
           p.sweep_charged, p.pages_swept);
  }
  if (p.unswept_pages > p.pages_to_sweep) {
    fail(&out, "INV-P2", "{} pages unswept but only {} were left to sweep at the bump",
         p.unswept_pages, p.pages_to_sweep);
  } else {
    const std::uint64_t left_lists = p.pages_to_sweep - p.unswept_pages;
    const std::uint64_t by_flush = p.eager_flush ? 0 : p.cache_pages;
    if (p.pages_swept < left_lists || p.pages_swept - left_lists > by_flush)
      fail(&out, "INV-P2",
           "{} pages counted swept since the bump; {} left the unswept lists and flushes can "
           "have swept at most {} more",
           p.pages_swept, left_lists, by_flush);
  }
  // Next-cycle reuse charges every refill, and a forced flush (testing::flush_all) can hand the
  // same free slots out twice in a cycle: no bound from the spans holds there.
  if (p.owner_reuse && p.pacer_allocated > p.span_bytes)
    fail(&out, "INV-P3",
         "the pacer charged {} bytes since the bump, more than the {} bytes of pages the spans "
         "hold: pages handed out since the bump net of those taken back cannot exceed them",
         p.pacer_allocated, p.span_bytes);
}

void flush_gen_violations(unsigned proc, std::int64_t delta, std::vector<Violation>& out) {
  if (delta != 0 && delta != -2)
    fail(&out, "INV-G4", "P{} flush_gen sg{:+d} not in {{sg, sg-2}}", proc, delta);
}

void sweep_done_violations(bool sweep_done, std::uint64_t unswept, std::uint64_t stale,
                           std::uint64_t active, std::vector<Violation>& out) {
  if (sweep_done && (unswept != 0 || stale != 0 || active != 0))
    fail(&out, "INV-G6", "sweep done while {} spans are unswept, {} Ps stale, {} sweeps active",
         unswept, stale, active);
  if (!sweep_done && unswept == 0 && stale == 0 && active == 0)
    fail(&out, "INV-G6", "sweep not done although no span is unswept and no P is stale");
}

void accounting_violations(const SpanTotals& t, const Stats& st, std::vector<Violation>& out) {
  auto same = [&](const char* what, std::uint64_t stat, std::uint64_t spans) {
    if (stat != spans) fail(&out, "INV-C", "stats {} {} but the spans hold {}", what, stat, spans);
  };
  same("live_objects", st.live_objects, t.objects);
  same("live_bytes", st.live_bytes, t.object_bytes);
  same("pending_frees", st.pending_frees, t.pending_frees);
  same("span_bytes", st.span_bytes, t.in_use_bytes);
  same("mapped_bytes", st.mapped_bytes, t.in_use_bytes + t.free_bytes);
  same("released_bytes", st.released_bytes, t.released_bytes);
}

}  // namespace testing
}  // namespace spanheap
