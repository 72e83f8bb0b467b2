// heap_oracle: snapshot invariants, step transitions and the object shadow shared by the property
// files (see heap_oracle.hpp and docs/property-tests.md). Every rule below names the DESIGN §8
// invariant (or Go issue) it stands for, so a failure message says what broke.
#include "heap_oracle.hpp"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace spanheap::props {
namespace {

constexpr std::size_t kPage = page_size;

bool is_central(SpanLocation loc) {
  return loc == SpanLocation::central_partial_swept ||
         loc == SpanLocation::central_partial_unswept || loc == SpanLocation::central_full_swept ||
         loc == SpanLocation::central_full_unswept;
}
bool is_partial(SpanLocation loc) {
  return loc == SpanLocation::central_partial_swept || loc == SpanLocation::central_partial_unswept;
}
bool is_swept_set(SpanLocation loc) {
  return loc == SpanLocation::central_partial_swept || loc == SpanLocation::central_full_swept;
}

std::uint64_t total_swept(const Stats& s) {
  return s.swept_background + s.swept_proportional + s.swept_on_demand + s.swept_by_flush +
         s.swept_termination;
}

bool acquires_proc(Op op) {
  return op == Op::allocate || op == Op::fill || op == Op::free || op == Op::wake ||
         op == Op::flush_idle;
}

std::map<std::uintptr_t, const SpanInfo*> in_use_by_base(const HeapSnapshot& snap) {
  std::map<std::uintptr_t, const SpanInfo*> out;
  for (const SpanInfo& s : snap.spans)
    if (s.in_use) out.emplace(s.base, &s);
  return out;
}

std::size_t span_end(const SpanInfo& s) { return s.base + s.npages * kPage; }

}  // namespace

const char* to_string(Op op) {
  switch (op) {
    case Op::allocate:
      return "allocate";
    case Op::fill:
      return "fill";
    case Op::free:
      return "free";
    case Op::wake:
      return "wake";
    case Op::idle:
      return "idle";
    case Op::flush_idle:
      return "flush_idle";
    case Op::ragged_barrier:
      return "ragged_barrier";
    case Op::sweep_one:
      return "sweep_one";
    case Op::proportional_sweep:
      return "proportional_sweep";
    case Op::begin_cycle:
      return "begin_cycle";
    case Op::collect:
      return "collect";
    case Op::flush_all:
      return "flush_all";
    case Op::bad_free:
      return "bad_free";
  }
  return "?";
}

std::string describe(const SpanInfo& s) {
  return fmt::format(
      "span {:#x} npages={} {} class={} elem={} nelems={} free_index={} count={} "
      "pending={} sg{:+} {} P{}{}",
      s.base, s.npages, s.in_use ? "in-use" : "free", s.span_class, s.elem_size, s.nelems,
      s.free_index, s.alloc_count, s.pending_frees, s.sweepgen_delta,
      testing::to_string(s.location), s.cache_proc, s.released ? " released" : "");
}

std::string describe(const HeapSnapshot& snap) {
  std::string out = fmt::format("sg={} sweep_done={} active_sweepers={}\n", snap.sweepgen,
                                snap.sweep_done, snap.active_sweepers);
  for (const auto& p : snap.procs)
    out += fmt::format("  P{} flush_gen{:+} cached={}{}\n", p.index, p.flush_gen_delta,
                       p.cached_spans, p.idle ? "" : " busy");
  for (const auto& s : snap.spans) out += "  " + describe(s) + "\n";
  return out;
}

std::string join(const std::vector<std::string>& violations, std::size_t limit) {
  std::string out;
  for (std::size_t i = 0; i < violations.size() && i < limit; ++i) out += violations[i] + "\n";
  if (violations.size() > limit) out += fmt::format("... and {} more\n", violations.size() - limit);
  return out;
}

TestHeap::TestHeap(const HeapSetup& setup) {
  Options o;
  o.procs = setup.procs;
  o.sweepers = 0;
  o.flush = setup.flush;
  o.reuse = setup.reuse;
  o.gc_percent = 0;
  o.checks = setup.checks;
  o.error_handler = errors.handler();
  o.arena_bytes = setup.arena_bytes;
  o.release_after_cycles = setup.release_after_cycles;
  o.os = &os;
  heap = std::make_unique<Heap>(std::move(o));
}

// ---------------------------------------------------------------------------------------------
// Static invariants of one snapshot.

std::vector<std::string> snapshot_violations(const HeapSnapshot& snap, unsigned procs) {
  std::vector<std::string> v;
  auto bad = [&](std::string m) { v.push_back(std::move(m)); };
  const auto classes = testing::size_classes();

  if (snap.procs.size() != procs)
    bad(fmt::format("snapshot lists {} Ps, heap has {}", snap.procs.size(), procs));
  if (snap.stats.sweepgen != snap.sweepgen)
    bad(fmt::format("stats.sweepgen {} != snapshot sweepgen {}", snap.stats.sweepgen,
                    snap.sweepgen));
  if (snap.active_sweepers != 0)
    bad(fmt::format("INV-G1: {} active sweepers while no heap call runs", snap.active_sweepers));

  std::vector<unsigned> cached_per_proc(snap.procs.size(), 0);
  std::set<std::pair<int, unsigned>> proc_class;  // (P, class) cached
  bool unswept_or_stale = false;
  const SpanInfo* prev = nullptr;
  std::set<std::uintptr_t> bases;
  for (const SpanInfo& s : snap.spans) {
    const std::string id = describe(s);
    if (!bases.insert(s.base).second) bad("membership: span listed twice: " + id);
    if (s.npages == 0) bad("span with zero pages: " + id);
    if (prev) {
      if (prev->base >= s.base) bad("snapshot not sorted by base at " + id);
      if (span_end(*prev) > s.base) bad("overlap: " + describe(*prev) + " overlaps " + id);
      // Runs merge within an arena; arenas are 1 MiB-aligned reservations that may happen to be
      // adjacent in the address space, so a meeting point on a 1 MiB boundary may be two arenas.
      constexpr std::uintptr_t granule = std::uintptr_t{1} << 20;
      if (!prev->in_use && !s.in_use && span_end(*prev) == s.base && s.base % granule != 0)
        bad("coalescing: adjacent free runs " + describe(*prev) + " and " + id);
    }
    prev = &s;
    const std::int64_t d = s.sweepgen_delta;
    if (!s.in_use) {
      if (s.location != SpanLocation::page_heap_free)
        bad("membership: free run not in the page heap: " + id);
      if (s.alloc_count != 0 || s.pending_frees != 0) bad("INV-L4: free run with objects: " + id);
      if (d > 0 || d % 2 != 0)
        bad("INV-L4/S6: free run's kept sweepgen is not an earlier sg: " + id);
      if (s.cache_proc != -1) bad("membership: free run cached: " + id);
      continue;
    }
    if (s.released) bad("in-use span marked released: " + id);
    if (d != -2 && d != -1 && d != 0 && d != 1 && d != 3)
      bad("INV-S1: sweepgen not in {sg-2, sg-1, sg, sg+1, sg+3}: " + id);
    if (d == -1) bad("INV-S2: span mid-sweep (sg-1) while no heap call runs: " + id);
    if (d == -2 || d == -1 || d == 1) unswept_or_stale = true;
    if (s.nelems == 0 || s.alloc_count > s.nelems || s.free_index > s.nelems)
      bad("INV-A1: counts out of range: " + id);
    if (s.free_index > s.alloc_count)
      bad("INV-A1/A2: free_index beyond the allocated count (a slot below it is free): " + id);
    if (s.pending_frees > s.alloc_count) bad("pending frees exceed allocated count: " + id);
    // An emptied in-use span is released by its sweep, except when free() swept it (or flushed
    // its idle stale P) to judge a pointer: then it waits on a central partial list until the
    // next cycle's sweep, so the pointer is classified against its slots.
    if (s.alloc_count == 0 && !is_partial(s.location))
      bad("INV-L4: in-use span with no object outside a central partial list: " + id);
    if (s.span_class == 0) {
      if (d == 1 || d == 3 || s.location == SpanLocation::cached)
        bad("INV-S1: large span cached: " + id);
      if (s.nelems != 1) bad("large span with nelems != 1: " + id);
    } else {
      if (s.span_class >= classes.size() + 1 && s.span_class > classes.size())
        bad("span class out of range: " + id);
      for (const auto& c : classes) {
        if (c.span_class != s.span_class) continue;
        if (c.size != s.elem_size || c.npages != s.npages || c.nelems != s.nelems)
          bad(fmt::format("span shape disagrees with class table (size {} npages {} nelems {}): {}",
                          c.size, c.npages, c.nelems, id));
      }
    }
    const bool cached = s.location == SpanLocation::cached;
    if (cached != (d == 1 || d == 3)) bad("INV-S3: cached iff sweepgen is sg+1 or sg+3: " + id);
    if (cached) {
      if (s.cache_proc < 0 || static_cast<std::size_t>(s.cache_proc) >= snap.procs.size()) {
        bad("INV-S3: cached span without a valid P: " + id);
      } else {
        ++cached_per_proc[s.cache_proc];
        const std::int64_t fg = snap.procs[s.cache_proc].flush_gen_delta;
        if (d == 3 && fg != 0) bad("INV-S3: sg+3 span in a stale cache: " + id);
        if (d == 1 && fg != -2) bad("INV-S3: sg+1 span in a flushed cache: " + id);
        if (!proc_class.insert({s.cache_proc, s.span_class}).second)
          bad("INV-S3: P caches two spans of one class: " + id);
      }
    } else {
      if (s.cache_proc != -1) bad("uncached span names a caching P: " + id);
      if (!is_central(s.location)) bad("membership: in-use span in no central set: " + id);
      if (is_swept_set(s.location) && d != 0)
        bad("membership: swept set holds sweepgen != sg: " + id);
      if (is_central(s.location) && !is_swept_set(s.location) && d != -2)
        bad("membership: unswept set holds sweepgen != sg-2: " + id);
      if (is_partial(s.location) && s.alloc_count >= s.nelems)
        bad("INV-L3: partial set holds a full span: " + id);
      if (is_central(s.location) && !is_partial(s.location) && s.alloc_count != s.nelems)
        bad("membership: full set holds a span with free slots: " + id);
      if (s.span_class == 0 && is_partial(s.location)) bad("large span in a partial set: " + id);
    }
  }
  bool stale_proc = false;
  for (std::size_t i = 0; i < snap.procs.size(); ++i) {
    const auto& p = snap.procs[i];
    if (p.index != i) bad(fmt::format("P{} listed at position {}", p.index, i));
    if (p.flush_gen_delta != 0 && p.flush_gen_delta != -2)
      bad(fmt::format("INV-G4: P{} flush_gen{:+} not in {{sg, sg-2}}", i, p.flush_gen_delta));
    if (p.flush_gen_delta == -2) stale_proc = true;
    if (!p.idle) bad(fmt::format("P{} busy while no heap call runs", i));
    if (p.cached_spans != cached_per_proc[i])
      bad(fmt::format("INV-S3: P{} reports {} cached spans, {} spans name it", i, p.cached_spans,
                      cached_per_proc[i]));
  }
  const bool done = !unswept_or_stale && !stale_proc && snap.active_sweepers == 0;
  if (snap.sweep_done && !done)
    bad("INV-G6 (Go #45315/#46500): sweep done while a span is unswept or a P is stale");
  if (!snap.sweep_done && done) bad("sweep not done although nothing is unswept or stale");
  return v;
}

// ---------------------------------------------------------------------------------------------
// Accounting: Stats and the fake OS against the snapshot.

std::vector<std::string> accounting_violations(const HeapSnapshot& snap,
                                               const testing::FakeOsMemory& os) {
  std::vector<std::string> v;
  std::size_t in_use_bytes = 0, free_bytes = 0, released_bytes = 0, live_bytes = 0;
  std::uint64_t objects = 0, pending = 0;
  for (const SpanInfo& s : snap.spans) {
    const std::size_t bytes = s.npages * kPage;
    if (s.in_use) {
      in_use_bytes += bytes;
      objects += s.alloc_count;
      pending += s.pending_frees;
      live_bytes += std::size_t{s.alloc_count} * s.elem_size;
    } else if (s.released) {
      released_bytes += bytes;
    } else {
      free_bytes += bytes;
    }
  }
  const Stats& st = snap.stats;
  auto eq = [&](const char* what, std::uint64_t got, std::uint64_t want) {
    if (got != want)
      v.push_back(fmt::format("accounting: stats.{} = {}, spans say {}", what, got, want));
  };
  eq("span_bytes", st.span_bytes, in_use_bytes);
  eq("live_objects", st.live_objects, objects);
  eq("pending_frees", st.pending_frees, pending);
  eq("live_bytes", st.live_bytes, live_bytes);
  eq("released_bytes", st.released_bytes, released_bytes);
  eq("mapped_bytes", st.mapped_bytes, in_use_bytes + free_bytes);
  if (st.reserved_bytes != os.reserved_bytes())
    v.push_back(fmt::format("accounting: stats.reserved_bytes = {}, the OS reserved {}",
                            st.reserved_bytes, os.reserved_bytes()));
  if (os.committed_bytes() < in_use_bytes + free_bytes + released_bytes)
    v.push_back(fmt::format("accounting: the OS committed {} bytes, fewer than the {} in spans",
                            os.committed_bytes(), in_use_bytes + free_bytes + released_bytes));
  if (st.live_objects + st.frees < st.pending_frees)
    v.push_back("accounting: pending frees exceed objects");
  return v;
}

// ---------------------------------------------------------------------------------------------
// Page map: find_object at the edges of every span.

std::vector<std::string> page_map_violations(const Heap& heap, const HeapSnapshot& snap) {
  std::vector<std::string> v;
  auto probe = [&](const SpanInfo& s, std::uintptr_t addr, const char* where) {
    PointerInfo info = heap.find_object(reinterpret_cast<const void*>(addr));
    auto bad = [&](const char* why) {
      v.push_back(fmt::format(
          "page map: find_object({:#x}) at {} of {}: kind {} base {} class {}: {}", addr, where,
          describe(s), static_cast<int>(info.kind), info.base, info.span_class, why));
    };
    if (!s.in_use) {
      if (info.kind != PointerKind::free_pages) bad("expected free_pages");
      return;
    }
    const std::uintptr_t limit = s.base + s.elem_size * s.nelems;
    if (addr >= limit) {
      if (info.kind != PointerKind::span_tail) bad("expected span_tail");
      return;
    }
    if (info.span_class != s.span_class) bad("class disagrees");
    const std::uintptr_t slot = s.base + (addr - s.base) / s.elem_size * s.elem_size;
    if (reinterpret_cast<std::uintptr_t>(info.base) != slot) bad("base is not the slot start");
    const bool at_start = addr == slot;
    switch (info.kind) {
      case PointerKind::object_start:
        if (!at_start) bad("object_start inside a slot");
        break;
      case PointerKind::interior:
        if (at_start) bad("interior at a slot start");
        break;
      case PointerKind::free_slot:
        break;
      default:
        bad("expected a slot kind");
    }
    if (s.span_class == 0 && info.kind == PointerKind::free_slot)
      bad("large span with a free slot");
  };
  for (const SpanInfo& s : snap.spans) {
    probe(s, s.base, "start");
    probe(s, span_end(s) - 1, "last byte");
    if (s.npages > 1) probe(s, s.base + kPage * (s.npages / 2) + 8, "middle page");
  }
  int local = 0;
  if (heap.find_object(&local).kind != PointerKind::foreign)
    v.push_back("page map: a stack address is not foreign");
  return v;
}

std::vector<std::string> slot_violations(const Heap& heap, const SpanInfo& s) {
  std::vector<std::string> v;
  if (!s.in_use || s.span_class == 0) return v;
  unsigned allocated = 0, pending = 0;
  for (unsigned i = 0; i < s.nelems; ++i) {
    const std::uintptr_t addr = s.base + std::uintptr_t{i} * s.elem_size;
    PointerInfo info = heap.find_object(reinterpret_cast<const void*>(addr));
    if (info.kind == PointerKind::object_start) {
      ++allocated;
      if (info.pending_free) ++pending;
      if (info.size < s.elem_size)
        v.push_back(
            fmt::format("slot {} usable size {} < elem size: {}", i, info.size, describe(s)));
    } else if (info.kind == PointerKind::free_slot) {
      if (i < s.free_index)
        v.push_back(fmt::format("INV-A1: slot {} below free_index is free: {}", i, describe(s)));
    } else {
      v.push_back(
          fmt::format("slot {} classified {} : {}", i, static_cast<int>(info.kind), describe(s)));
    }
  }
  if (allocated != s.alloc_count)
    v.push_back(fmt::format("INV-A2: {} slots allocated by the bits, alloc_count says: {}",
                            allocated, describe(s)));
  if (pending != s.pending_frees)
    v.push_back(
        fmt::format("{} slots pending by the bits, pending_frees says: {}", pending, describe(s)));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Tracker.

Tracker::Tracker(const HeapSetup& setup, CheckSet checks)
    : setup_(setup), checks_(checks), test_(setup) {
  last_ = testing::snapshot(*test_.heap);
}

const SpanInfo* Tracker::span_containing(const HeapSnapshot& snap, std::uintptr_t p) const {
  auto it = std::upper_bound(snap.spans.begin(), snap.spans.end(), p,
                             [](std::uintptr_t a, const SpanInfo& s) { return a < s.base; });
  if (it == snap.spans.begin()) return nullptr;
  --it;
  return p < span_end(*it) ? &*it : nullptr;
}

unsigned Tracker::naive_next_free(const SpanInfo& s) {
  for (unsigned i = s.free_index; i < s.nelems; ++i) {
    const std::uintptr_t addr = s.base + std::uintptr_t{i} * s.elem_size;
    if (heap().find_object(reinterpret_cast<const void*>(addr)).kind == PointerKind::free_slot)
      return i;
  }
  return s.nelems;
}

void* Tracker::allocate(Step& step, unsigned proc, std::size_t size, std::size_t align) {
  // Predict the slot when P `proc` is current and caches a span of this class with room
  // (INV-A3: the allocation cache mirrors the complement of the bits from free_index).
  const unsigned cls = testing::size_to_class(size, align);
  if (step.allocated.empty() && cls != 0 && last_.procs[proc].flush_gen_delta == 0) {
    for (const SpanInfo& s : last_.spans) {
      if (s.location == SpanLocation::cached && s.cache_proc == static_cast<int>(proc) &&
          s.span_class == cls && s.alloc_count < s.nelems) {
        predicted_slot_[s.base] = naive_next_free(s);
      }
    }
  }
  void* p = heap().proc(proc).allocate(size, align);
  if (p == nullptr) {
    step.allocated.push_back(0);
    return nullptr;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(p);
  step.allocated.push_back(base);
  returned_.insert(base);
  TrackedObject o;
  o.base = base;
  o.size = size;
  PointerInfo info = heap().find_object(p);
  o.usable = info.size;
  o.span_class = cls;
  o.stamp = next_stamp_++;
  if (next_stamp_ == 0) next_stamp_ = 1;
  // The quarantine (DESIGN §4): a new object never overlaps a live object, and overlaps a
  // pending one only if a sweep in this same step reclaimed it (a refill may sweep a span and
  // allocate from it at once); finish() checks that sweep against the snapshots.
  const std::size_t extent = std::max<std::size_t>(size, 1);
  auto first = objects_.lower_bound(base);
  if (first != objects_.begin()) {
    auto before = std::prev(first);
    if (before->first + std::max<std::size_t>(before->second.size, 1) > base) first = before;
  }
  for (auto it = first; it != objects_.end() && it->first < base + extent;) {
    if (!it->second.pending) {
      overlap_.push_back(fmt::format(
          "quarantine: allocation {:#x}+{} overlaps live object {:#x}+{} (slot handed out twice)",
          base, size, it->first, it->second.size));
      return p;  // not tracked: the step fails
    }
    reused_pending_.push_back(it->first);
    it = objects_.erase(it);
  }
  if (size > 0) {
    auto* bytes = static_cast<unsigned char*>(p);
    bytes[0] = o.stamp;
    bytes[size - 1] = o.stamp;
  }
  objects_[base] = o;
  return p;
}

void Tracker::free(Step& step, unsigned proc, std::uintptr_t base) {
  step.ptr = base;
  auto it = objects_.find(base);
  if (it != objects_.end() && it->second.size > 0) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(base);
    if (bytes[0] != it->second.stamp || bytes[it->second.size - 1] != it->second.stamp)
      overlap_.push_back(fmt::format("object {:#x} contents changed while live", base));
  }
  heap().proc(proc).free(reinterpret_cast<void*>(base));
  if (it != objects_.end()) it->second.pending = true;
}

std::vector<std::string> Tracker::finish(const Step& step) {
  std::vector<std::string> v = std::move(overlap_);
  overlap_.clear();
  auto bad = [&](std::string m) {
    v.push_back(fmt::format("[{}] {}", to_string(step.op), std::move(m)));
  };
  const HeapSnapshot& before = last_;
  HeapSnapshot cur = testing::snapshot(heap());
  const Stats& s0 = before.stats;
  const Stats& s1 = cur.stats;

  // Error log: only a bad free may report, and exactly once with its kind.
  std::vector<ErrorReport> reports = test_.errors.take();
  if (step.op == Op::bad_free) {
    if (reports.size() != 1) {
      bad(fmt::format("bad free of {:#x} made {} reports", step.ptr, reports.size()));
    } else if (!step.expected_errors.empty() &&
               std::find(step.expected_errors.begin(), step.expected_errors.end(),
                         reports[0].kind) == step.expected_errors.end()) {
      std::string want;
      for (ErrorKind k : step.expected_errors)
        want += std::string(want.empty() ? "" : "|") + spanheap::to_string(k);
      bad(fmt::format("bad input {:#x} reported {} instead of {}: {}", step.ptr,
                      spanheap::to_string(reports[0].kind), want, reports[0].message));
    }
  } else {
    for (const auto& r : reports) bad("unexpected report: " + r.message);
  }
  if (s1.errors - s0.errors != reports.size())
    bad(fmt::format("stats.errors grew by {}, {} reports seen", s1.errors - s0.errors,
                    reports.size()));

  // Static invariants.
  for (auto& m : snapshot_violations(cur, setup_.procs)) bad(std::move(m));
  if (checks_.accounting)
    for (auto& m : accounting_violations(cur, test_.os)) bad(std::move(m));
  if (checks_.page_map)
    for (auto& m : page_map_violations(heap(), cur)) bad(std::move(m));
  if (checks_.slots)
    for (const SpanInfo& s : cur.spans)
      for (auto& m : slot_violations(heap(), s)) bad(std::move(m));
  if (checks_.verify) {
    VerifyResult r = heap().verify();
    if (!r.ok()) bad("heap.verify(): " + r.to_string());
  }

  // Sweepgen.
  const bool bump = step.op == Op::begin_cycle || step.op == Op::collect;
  const bool lazy = setup_.flush == FlushPolicy::lazy;
  if (cur.sweepgen != before.sweepgen + (bump ? 2u : 0u))
    bad(fmt::format("sweepgen {} -> {}", before.sweepgen, cur.sweepgen));
  if (s1.cycles != s0.cycles + (bump ? 1 : 0))
    bad(fmt::format("cycles {} -> {}", s0.cycles, s1.cycles));

  // Span transitions. `swept` collects spans that needed sweeping and were swept in this step.
  const auto prev_spans = in_use_by_base(before);
  const auto cur_spans = in_use_by_base(cur);
  const bool owner_step = acquires_proc(step.op);
  // A free into a span that an idle stale P caches needs that span swept first (Go's
  // ensureSwept); the heap may take the idle P and flush it, as the ragged barrier would. That P
  // then counts as an owner of its spans for this step.
  int helped_proc = -1;
  if (step.op == Op::free || step.op == Op::bad_free) {
    const SpanInfo* sp = span_containing(before, step.ptr);
    if (sp && sp->in_use && sp->sweepgen_delta == 1 && sp->cache_proc != step.proc &&
        sp->cache_proc >= 0 && cur.procs[sp->cache_proc].flush_gen_delta == 0)
      helped_proc = sp->cache_proc;
  }
  std::set<std::uintptr_t> swept;
  std::uint64_t expected_sweeps = 0;
  for (const auto& [base, x] : prev_spans) {
    auto it = cur_spans.find(base);
    const SpanInfo* c = nullptr;
    if (it != cur_spans.end() && it->second->span_class == x->span_class &&
        it->second->npages == x->npages)
      c = it->second;
    const std::int64_t d0 = x->sweepgen_delta;
    const std::int64_t d1 = c ? c->sweepgen_delta : 99;
    const bool needs = d0 == -2 || d0 == 1;
    const bool by_owner = (owner_step && x->cache_proc == step.proc) ||
                          (helped_proc >= 0 && x->cache_proc == helped_proc);
    const std::string id = describe(*x) + " -> " + (c ? describe(*c) : std::string("gone"));
    if (bump) {
      // Termination sweeps every span that needs it (and flushes stale Ps); the bump relabels.
      bool swept_now = needs;
      if (d0 == 3) {
        if (lazy && step.op == Op::begin_cycle) {
          if (!c || d1 != 1 || c->cache_proc != x->cache_proc)
            bad("cycle: a current cached span must become sg+1 in the same cache: " + id);
        } else if (lazy) {  // collect: bumped to sg+1, then swept by the barrier's flush
          swept_now = true;
          if (c && d1 != 0) bad("collect: cached span not flushed and swept by the barrier: " + id);
        } else if (!c || d1 != -2) {
          bad("eager cycle: cached span must be flushed in the pause and left unswept: " + id);
        }
      } else if (!c) {
        if (!needs) bad("cycle: a swept span vanished without a sweep: " + id);
      } else if (d1 != -2) {
        bad("cycle: an uncached span must be at sg-2 after the bump: " + id);
      }
      if (swept_now) {
        ++expected_sweeps;
        swept.insert(base);
      }
      continue;
    }
    if (!c) {
      if (!needs) bad("a swept span vanished without a sweep: " + id);
      ++expected_sweeps;
      swept.insert(base);
      continue;
    }
    switch (d0) {
      case -2:
        if (d1 == 0 || (d1 == 3 && (step.op == Op::allocate || step.op == Op::fill) &&
                        c->cache_proc == step.proc)) {
          ++expected_sweeps;
          swept.insert(base);
          if (step.op == Op::wake || step.op == Op::flush_idle || step.op == Op::ragged_barrier ||
              step.op == Op::idle || step.op == Op::flush_all ||
              (step.op == Op::bad_free && !(step.ptr >= base && step.ptr < span_end(*x))))
            bad("a flush or no-op step swept an uncached span: " + id);
        } else if (d1 != -2) {
          bad("illegal transition from sg-2: " + id);
        }
        break;
      case 1:
        if (d1 == 1) {
          if (c->cache_proc != x->cache_proc) bad("stale span moved to another cache: " + id);
          if ((by_owner && cur.procs[x->cache_proc].flush_gen_delta == 0) ||
              step.op == Op::ragged_barrier || step.op == Op::flush_all)
            bad("stale span survived its P's flush: " + id);
        } else if (d1 == 0 || (d1 == 3 && by_owner)) {
          if (!(by_owner || step.op == Op::ragged_barrier || step.op == Op::flush_all))
            bad("INV-S4: a stale cached span was swept by someone other than its P: " + id);
          ++expected_sweeps;
          swept.insert(base);
        } else {
          bad("illegal transition from sg+1: " + id);
        }
        break;
      case 0:
        if (d1 == 3 &&
            !((step.op == Op::allocate || step.op == Op::fill) && c->cache_proc == step.proc))
          bad("a span was cached by a step that does not allocate on that P: " + id);
        else if (d1 != 0 && d1 != 3)
          bad("illegal transition from sg: " + id);
        break;
      case 3:
        if (d1 == 3) {
          if (c->cache_proc != x->cache_proc) bad("span moved between caches: " + id);
          if (step.op == Op::flush_all) bad("flush_all left a span cached: " + id);
        } else if (d1 == 0) {
          const bool refill = (step.op == Op::allocate || step.op == Op::fill) && by_owner;
          if (!refill && step.op != Op::flush_all)
            bad("a current cached span was uncached by a step that may not: " + id);
          if (refill && c->alloc_count != c->nelems && step.op == Op::allocate)
            bad("C6: refill uncached a span with free slots: " + id);
        } else {
          bad("illegal transition from sg+3: " + id);
        }
        break;
      default:
        break;  // reported by the static check
    }
    // Spans cached by other Ps are untouchable (owner: P), except for frees into them.
    if ((d0 == 1 || d0 == 3) && !by_owner && step.op != Op::flush_all &&
        step.op != Op::ragged_barrier && (d1 != d0 || c->cache_proc != x->cache_proc))
      bad("another P's cached span changed: " + id);
  }
  // New spans are born swept (T1): at sg, or at sg+3 when the allocating P cached them.
  for (const auto& [base, c] : cur_spans) {
    auto it = prev_spans.find(base);
    const bool is_new = it == prev_spans.end() || it->second->span_class != c->span_class ||
                        it->second->npages != c->npages;
    if (!is_new) continue;
    if (step.op != Op::allocate && step.op != Op::fill)
      bad("a span appeared in a step that does not allocate: " + describe(*c));
    if (!(c->sweepgen_delta == 0 || (c->sweepgen_delta == 3 && c->cache_proc == step.proc)))
      bad("T1: a new span is not at sg (or sg+3 in the allocating cache): " + describe(*c));
    if (step.op == Op::allocate && c->span_class != 0) {
      for (const auto& [b, x] : prev_spans)
        if (x->span_class == c->span_class && is_partial(x->location) && !swept.count(b) &&
            cur_spans.count(b) && cur_spans.at(b)->location == x->location)
          bad("central grew a span while a partial span of the class stayed unused: " +
              describe(*x));
    }
  }
  // Swept spans that stayed in central: INV-A4 (free_index 0, pending cleared, count = survivors).
  std::map<std::uintptr_t, unsigned> freed_in_step;  // span base -> frees recorded in this step
  if (step.op == Op::free) {
    if (const SpanInfo* sp = span_containing(cur, step.ptr)) ++freed_in_step[sp->base];
  }
  for (std::uintptr_t base : swept) {
    auto it = cur_spans.find(base);
    if (it == cur_spans.end()) continue;
    const SpanInfo* c = it->second;
    const SpanInfo* x = prev_spans.at(base);
    if (c->location == SpanLocation::cached) continue;  // allocated from after the sweep
    bool allocated_into = false;
    for (std::uintptr_t p : step.allocated) allocated_into |= p >= c->base && p < span_end(*c);
    if (allocated_into) continue;  // swept, cached, filled and flushed within this step
    if (c->free_index != 0) bad("INV-A4: swept span's free_index is not 0: " + describe(*c));
    const unsigned frees = freed_in_step.count(base) ? freed_in_step[base] : 0;
    if (c->pending_frees != frees) bad("INV-A4: swept span kept pending frees: " + describe(*c));
    if (c->alloc_count != x->alloc_count - x->pending_frees)
      bad(fmt::format("INV-A4/C18: sweep left count {} from {} with {} pending: {}", c->alloc_count,
                      x->alloc_count, x->pending_frees, describe(*c)));
  }
  const std::uint64_t sweeps = total_swept(s1) - total_swept(s0);
  if (sweeps != expected_sweeps)
    bad(fmt::format("each span swept exactly once: stats count {} sweeps, the snapshots show {}",
                    sweeps, expected_sweeps));
  if (step.op == Op::sweep_one) {
    bool any = false;
    for (const auto& [b, x] : prev_spans) any |= x->sweepgen_delta == -2;
    if (step.result_bool != any)
      bad(fmt::format("sweep_one returned {} with unswept={}", step.result_bool, any));
    if (expected_sweeps != (any ? 1u : 0u))
      bad(fmt::format("sweep_one swept {} spans", expected_sweeps));
  }
  if (step.op == Op::proportional_sweep && step.result_count != expected_sweeps)
    bad(fmt::format("proportional_sweep returned {} but swept {}", step.result_count,
                    expected_sweeps));

  // flush_gen and the flush counters.
  unsigned stale_before = 0;
  for (const auto& p : before.procs) stale_before += p.flush_gen_delta == -2;
  std::uint64_t lazy_flushes = s1.flushes_lazy - s0.flushes_lazy;
  std::uint64_t barrier_flushes = s1.flushes_barrier - s0.flushes_barrier;
  std::uint64_t eager_flushes = s1.flushes_eager - s0.flushes_eager;
  for (std::size_t j = 0; j < cur.procs.size() && j < before.procs.size(); ++j) {
    const std::int64_t f0 = before.procs[j].flush_gen_delta, f1 = cur.procs[j].flush_gen_delta;
    const bool acquired =
        (owner_step && static_cast<int>(j) == step.proc) || static_cast<int>(j) == helped_proc;
    if (bump) {
      const std::int64_t want = (lazy && step.op == Op::begin_cycle) ? -2 : 0;
      if (f1 != want) bad(fmt::format("P{} flush_gen{:+} after the cycle, want {:+}", j, f1, want));
    } else if (step.op == Op::ragged_barrier || acquired) {
      if (f1 != 0)
        bad(fmt::format("INV-G2/G7: P{} still stale after it was acquired or barriered", j));
    } else if (step.op == Op::flush_all) {
      if (f1 != f0 && f1 != 0)
        bad(fmt::format("P{} flush_gen {:+} -> {:+} in flush_all", j, f0, f1));
    } else if (f1 != f0) {
      bad(fmt::format("P{} flush_gen {:+} -> {:+} in a step that did not touch it", j, f0, f1));
    }
  }
  const bool acquired_stale =
      owner_step && step.proc >= 0 && before.procs[step.proc].flush_gen_delta == -2;
  if (step.op == Op::flush_idle && step.result_bool != acquired_stale)
    bad(fmt::format("flush_idle returned {} for a P that was {}", step.result_bool,
                    acquired_stale ? "stale" : "current"));
  // Expected flushes by kind. A cycle first finishes the previous one (its barrier flushes every
  // still-stale P); under eager it flushes every P in the pause; collect's own barrier then
  // flushes every P the bump made stale.
  std::uint64_t want_lazy = 0, want_barrier = 0, want_eager = 0;
  if (owner_step && step.op != Op::flush_idle && acquired_stale) want_lazy = 1;
  if (step.op == Op::flush_idle && acquired_stale) want_barrier = 1;
  if (step.op == Op::ragged_barrier || bump) want_barrier = stale_before;
  if (helped_proc >= 0) want_barrier += 1;
  if (step.op == Op::collect && lazy) want_barrier += setup_.procs;
  if (bump && !lazy) want_eager = setup_.procs;
  if (step.op != Op::flush_all) {
    if (lazy_flushes != want_lazy)
      bad(fmt::format("flushes_lazy grew by {}, want {}", lazy_flushes, want_lazy));
    if (barrier_flushes != want_barrier)
      bad(fmt::format("flushes_barrier grew by {}, want {}", barrier_flushes, want_barrier));
  }
  if (eager_flushes != want_eager)
    bad(fmt::format("flushes_eager grew by {}, want {}", eager_flushes, want_eager));
  if (step.op == Op::flush_all)
    for (const SpanInfo& c : cur.spans)
      if (c.location == SpanLocation::cached) bad("flush_all left a cached span: " + describe(c));

  // Allocations.
  std::size_t allocated_now = 0;
  for (std::size_t k = 0; k < step.allocated.size(); ++k) {
    const std::uintptr_t p = step.allocated[k];
    if (p == 0) {
      bad(fmt::format("allocation {} of {} bytes returned nullptr", k, step.size));
      continue;
    }
    ++allocated_now;
    if (p % std::max<std::size_t>(step.align, 1) != 0)
      bad(fmt::format("{:#x} not aligned to {}", p, step.align));
    const SpanInfo* sp = span_containing(cur, p);
    const unsigned cls = testing::size_to_class(step.size, step.align);
    if (!sp || !sp->in_use) {
      bad(fmt::format("allocated {:#x} lies in no in-use span", p));
      continue;
    }
    if (sp->span_class != cls)
      bad(fmt::format("allocated {:#x} in class {}, want {}", p, sp->span_class, cls));
    if (cls != 0 && k + 1 == step.allocated.size() &&
        !(sp->location == SpanLocation::cached && sp->cache_proc == step.proc &&
          sp->sweepgen_delta == 3))
      bad("the allocating P does not cache the span it allocated from: " + describe(*sp));
    if (cls == 0 && (sp->base != p || sp->npages * kPage < step.size))
      bad(fmt::format("large object {:#x}+{} not at the start of a big enough span: {}", p,
                      step.size, describe(*sp)));
    if (k == 0) {
      for (const auto& [sbase, slot] : predicted_slot_) {
        if (sp->base != sbase || p == sbase + std::uintptr_t{slot} * sp->elem_size) continue;
        bad(fmt::format("INV-A3: allocation returned slot {} but the naive scan says slot {}: {}",
                        (p - sbase) / sp->elem_size, slot, describe(*sp)));
      }
      for (const auto& [sbase, slot] : predicted_slot_)
        if (sp->base != sbase && slot < prev_spans.at(sbase)->nelems)
          bad(fmt::format("allocation left the P's current span {:#x} with free slot {} for {}",
                          sbase, slot, describe(*sp)));
    }
  }
  predicted_slot_.clear();
  if (s1.allocations - s0.allocations != allocated_now)
    bad(fmt::format("stats.allocations grew by {}, {} objects returned",
                    s1.allocations - s0.allocations, allocated_now));
  const std::uint64_t want_frees = step.op == Op::free ? 1 : 0;
  if (s1.frees - s0.frees != want_frees)
    bad(fmt::format("stats.frees grew by {}, want {}", s1.frees - s0.frees, want_frees));

  // Pending objects whose slot an allocation of this step reused: their span must have been swept.
  for (std::uintptr_t o : reused_pending_) {
    const SpanInfo* was = span_containing(before, o);
    if (!was || !swept.count(was->base))
      bad(fmt::format("quarantine: pending object {:#x} reused without a sweep of its span", o));
  }
  reused_pending_.clear();
  // Objects: pending objects in swept spans are reclaimed; everything else is exactly as tracked.
  for (auto it = objects_.begin(); it != objects_.end();) {
    TrackedObject& o = it->second;
    const SpanInfo* was = span_containing(before, o.base);
    const bool reclaimed =
        o.pending && was && swept.count(was->base) && !(step.op == Op::free && step.ptr == o.base);
    if (reclaimed) {
      it = objects_.erase(it);
      continue;
    }
    PointerInfo info = heap().find_object(reinterpret_cast<const void*>(o.base));
    if (info.kind != PointerKind::object_start ||
        reinterpret_cast<std::uintptr_t>(info.base) != o.base || info.pending_free != o.pending ||
        info.size != o.usable) {
      bad(fmt::format("object {:#x} ({} bytes{}) is now kind {} pending {} size {}", o.base, o.size,
                      o.pending ? ", pending" : "", static_cast<int>(info.kind), info.pending_free,
                      info.size));
    }
    if (o.size > 0 && !o.pending) {
      const auto* bytes = reinterpret_cast<const unsigned char*>(o.base);
      if (bytes[0] != o.stamp || bytes[o.size - 1] != o.stamp)
        bad(fmt::format("object {:#x} contents changed while live", o.base));
    }
    ++it;
  }
  // The exact equation per span: tracked objects (live + pending) == alloc_count.
  for (const SpanInfo& s : cur.spans) {
    unsigned n = 0, pending = 0;
    for (auto it = objects_.lower_bound(s.base); it != objects_.end() && it->first < span_end(s);
         ++it) {
      ++n;
      pending += it->second.pending;
    }
    if (n != s.alloc_count || pending != s.pending_frees)
      bad(fmt::format("span holds {} tracked objects ({} pending), the heap counts: {}", n, pending,
                      describe(s)));
  }
  if (!v.empty()) v.push_back("before:\n" + describe(before) + "after:\n" + describe(cur));
  for (const SpanInfo& s : cur.spans)
    if (s.in_use)
      for (std::size_t k = 0; k < s.npages; ++k) used_pages_.insert(s.base + k * page_size);
  last_ = std::move(cur);
  return v;
}

}  // namespace spanheap::props
