// snapshot_check: see snapshot_check.hpp.
#include <spanheap/oracle/snapshot_check.hpp>

#include <fmt/format.h>

#include <cstdint>

namespace spanheap::oracle {
namespace {

using testing::HeapSnapshot;
using testing::SpanInfo;
using testing::SpanLocation;

template <typename... Args>
void fail(std::vector<Violation>& out, const char* id, fmt::format_string<Args...> f,
          Args&&... args) {
  out.push_back({id, fmt::format(f, std::forward<Args>(args)...)});
}

std::uintptr_t span_end(const SpanInfo& s) { return s.base + s.npages * page_size; }

testing::SpanFacts facts(const HeapSnapshot& snap, const SpanInfo& s) {
  testing::SpanFacts f;
  f.base = s.base;
  f.in_use = s.in_use;
  f.location = s.location;
  f.cache_proc = s.cache_proc;
  f.owned = s.owned;
  f.sweepgen_delta = s.sweepgen_delta;
  if (s.cache_proc >= 0 && static_cast<std::size_t>(s.cache_proc) < snap.procs.size())
    f.cache_flush_gen_delta = snap.procs[static_cast<std::size_t>(s.cache_proc)].flush_gen_delta;
  f.large = s.span_class == 0;
  f.nelems = s.nelems;
  f.free_index = s.free_index;
  f.alloc_count = s.alloc_count;
  f.owner_reuse = snap.reuse == ReusePolicy::owner;
  f.worth_collecting = s.worth_collecting;
  return f;
}

// The span's shape: the class table for small spans, one object filling the span for large ones.
void shape_violations(const SpanInfo& s, std::vector<Violation>& out) {
  if (s.span_class == 0) {
    if (s.nelems != 1 || s.elem_size != s.npages * page_size)
      fail(out, "span", "large span {:#x} has nelems {} elem_size {}", s.base, s.nelems,
           s.elem_size);
    return;
  }
  // The class table indexed by span class (a lookup per span, not a search).
  static const std::vector<testing::SizeClassInfo> by_class = [] {
    std::vector<testing::SizeClassInfo> t;
    for (const testing::SizeClassInfo& c : testing::size_classes()) {
      if (c.span_class >= t.size()) t.resize(c.span_class + 1, testing::SizeClassInfo{});
      t[c.span_class] = c;
    }
    return t;
  }();
  if (s.span_class >= by_class.size() || by_class[s.span_class].span_class != s.span_class) {
    fail(out, "span", "span {:#x} has class {}, which is not in the table", s.base, s.span_class);
    return;
  }
  const testing::SizeClassInfo& c = by_class[s.span_class];
  if (c.size != s.elem_size || c.nelems != s.nelems || c.npages != s.npages)
    fail(out, "span", "span {:#x} of class {} does not match the class table", s.base,
         s.span_class);
}

// Order, overlap and coalescing between a span and the one before it.
void neighbour_violations(const SpanInfo& prev, const SpanInfo& s, std::vector<Violation>& out) {
  if (prev.base >= s.base || span_end(prev) > s.base)
    fail(out, "page_map",
         "span {:#x} starts inside or before the previous span ({:#x}, ends {:#x})", s.base,
         prev.base, span_end(prev));
  // Free runs merge within an arena; arenas are 1 MiB-aligned reservations that may happen to be
  // adjacent, so a meeting point on a 1 MiB boundary may be two arenas.
  constexpr std::uintptr_t granule = std::uintptr_t{1} << 20;
  if (!prev.in_use && !s.in_use && span_end(prev) == s.base && s.base % granule != 0)
    fail(out, "page_heap", "adjacent free runs {:#x} and {:#x} were not coalesced", prev.base,
         s.base);
}

// What each P's cache holds against what the P table says.
void cache_violations(const HeapSnapshot& snap, std::vector<Violation>& out) {
  // Per P, the spans that name it and the classes of its current spans. The storage is kept
  // between calls (fuzzers check a snapshot at every boundary of every program, and each
  // allocation under ASan records a stack).
  thread_local std::vector<unsigned> cached;
  thread_local std::vector<std::vector<unsigned>> classes;
  cached.assign(snap.procs.size(), 0);
  if (classes.size() < snap.procs.size()) classes.resize(snap.procs.size());
  for (std::size_t i = 0; i < snap.procs.size(); ++i) classes[i].clear();
  for (const SpanInfo& s : snap.spans) {
    if (!s.in_use || s.location != SpanLocation::cached) continue;
    if (s.cache_proc < 0 || static_cast<std::size_t>(s.cache_proc) >= snap.procs.size()) {
      fail(out, "INV-S3", "span {:#x} is cached by P{}, which does not exist", s.base,
           s.cache_proc);
      continue;
    }
    const auto p = static_cast<std::size_t>(s.cache_proc);
    ++cached[p];
    if (s.owned) continue;  // any number of owned spans of a class beside the current one
    for (unsigned c : classes[p]) {
      if (c == s.span_class)
        fail(out, "INV-S3", "P{} caches two spans of class {} ({:#x})", p, c, s.base);
    }
    classes[p].push_back(s.span_class);
  }
  for (std::size_t i = 0; i < snap.procs.size(); ++i) {
    const testing::ProcInfo& p = snap.procs[i];
    if (p.index != i) fail(out, "snapshot", "P{} listed at position {}", p.index, i);
    testing::flush_gen_violations(p.index, p.flush_gen_delta, out);
    if (!p.idle) fail(out, "world", "P{} is inside a heap call with the world stopped", p.index);
    if (p.cached_spans != cached[i])
      fail(out, "INV-S3", "P{} reports {} cached spans, {} spans name it", p.index, p.cached_spans,
           cached[i]);
  }
}

}  // namespace

void snapshot_violations(const HeapSnapshot& snap, std::vector<Violation>& out) {
  if (snap.stats.sweepgen != snap.sweepgen)
    fail(out, "snapshot", "stats.sweepgen {} but the snapshot's sweepgen is {}",
         snap.stats.sweepgen, snap.sweepgen);
  if (snap.active_sweepers != 0)
    fail(out, "INV-S2", "{} sweeps active with the world stopped", snap.active_sweepers);
  testing::SpanTotals totals;
  std::uint64_t unswept = 0;
  const SpanInfo* prev = nullptr;
  for (const SpanInfo& s : snap.spans) {
    testing::span_violations(facts(snap, s), out);
    if (prev != nullptr) neighbour_violations(*prev, s, out);
    prev = &s;
    totals.add(s);
    if (!s.in_use) continue;
    if (s.released) fail(out, "span", "in-use span {:#x} is marked released", s.base);
    if (s.pending_frees > s.alloc_count)
      fail(out, "INV-A2", "span {:#x} has {} pending frees among {} allocated slots", s.base,
           s.pending_frees, s.alloc_count);
    shape_violations(s, out);
    if (s.sweepgen_delta == -2) ++unswept;
  }
  cache_violations(snap, out);
  std::uint64_t stale = 0;
  for (const testing::ProcInfo& p : snap.procs) stale += p.flush_gen_delta == -2 ? 1 : 0;
  testing::sweep_done_violations(snap.sweep_done, unswept, stale, snap.active_sweepers, out);
  testing::accounting_violations(totals, snap.stats, out);
}

std::vector<Violation> snapshot_violations(const HeapSnapshot& snap) {
  std::vector<Violation> out;
  snapshot_violations(snap, out);
  return out;
}

std::string join(const std::vector<Violation>& violations, std::size_t limit) {
  std::string out;
  for (std::size_t i = 0; i < violations.size() && i < limit; ++i)
    out += fmt::format("{}: {}\n", violations[i].invariant, violations[i].message);
  if (violations.size() > limit) out += fmt::format("... and {} more\n", violations.size() - limit);
  return out;
}

std::string describe(const SpanInfo& s) {
  return fmt::format(
      "span {:#x} npages={} {} class={} elem={} nelems={} free_index={} count={} pending={} "
      "sg{:+} {} P{}{}",
      s.base, s.npages, s.in_use ? "in-use" : "free", s.span_class, s.elem_size, s.nelems,
      s.free_index, s.alloc_count, s.pending_frees, s.sweepgen_delta,
      testing::to_string(s.location), s.cache_proc, s.released ? " released" : "");
}

}  // namespace spanheap::oracle
