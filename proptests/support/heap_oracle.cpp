// heap_oracle: the property files' heap, the probes only they make (find_object over every slot
// and span edge, the fake OS's accounting) and the object table a step allocates into and frees
// from (see heap_oracle.hpp and docs/property-tests.md). The snapshot rules and the sweepgen moves
// table are the oracle library's (oracle/); step_oracle.cpp compares snapshots.
#include "heap_oracle.hpp"
#include "step_diff.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <spanheap/oracle/content.hpp>
#include <spanheap/oracle/shadow.hpp>
#include <spanheap/oracle/snapshot_check.hpp>

#include <algorithm>
#include <cstring>
#include <set>

namespace spanheap::props {
namespace {

constexpr std::size_t kPage = page_size;

std::size_t span_end(const SpanInfo& s) { return s.base + s.npages * kPage; }

// The bytes of an object the properties write and check: its first and last word (whole, when it
// is smaller), in the oracle's content pattern; a per-step check of every byte would dominate.
template <class Fn>
void for_each_checked_end(const TrackedObject& o, Fn&& fn) {
  const std::size_t n = std::min<std::size_t>(o.size, 8);
  if (n > 0) fn(std::size_t{0}, n);
  if (o.size > 8) fn(o.size - 8, std::size_t{8});
}

}  // namespace

bool contents_intact(const TrackedObject& o) {
  bool intact = true;
  for_each_checked_end(o, [&](std::size_t from, std::size_t len) {
    const auto* p = reinterpret_cast<const std::byte*>(o.base);
    intact = intact && !oracle::find_mismatch(p, o.seed, from, len);
  });
  return intact;
}

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
// Static invariants of one snapshot: the oracle library's snapshot rules (the same rules, and
// ids, as Heap::verify()) plus the P count this heap was built with.

std::vector<std::string> snapshot_violations(const HeapSnapshot& snap, unsigned procs) {
  std::vector<std::string> v;
  if (snap.procs.size() != procs)
    v.push_back(fmt::format("snapshot lists {} Ps, heap has {}", snap.procs.size(), procs));
  for (const Violation& x : oracle::snapshot_violations(snap))
    v.push_back(fmt::format("{}: {}", x.invariant, x.message));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Accounting against the fake OS (Stats against the spans is a snapshot rule).

std::vector<std::string> os_accounting_violations(const HeapSnapshot& snap,
                                                  const testing::FakeOsMemory& os) {
  std::vector<std::string> v;
  testing::SpanTotals t;
  for (const SpanInfo& s : snap.spans) t.add(s);
  const Stats& st = snap.stats;
  if (st.reserved_bytes != os.reserved_bytes())
    v.push_back(fmt::format("accounting: stats.reserved_bytes = {}, the OS reserved {}",
                            st.reserved_bytes, os.reserved_bytes()));
  const std::uint64_t in_spans = t.in_use_bytes + t.free_bytes + t.released_bytes;
  if (os.committed_bytes() < in_spans)
    v.push_back(fmt::format("accounting: the OS committed {} bytes, fewer than the {} in spans",
                            os.committed_bytes(), in_spans));
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
// CheckedHeap: the heap, its shadow and the objects a step allocates and frees.

CheckedHeap::CheckedHeap(const HeapSetup& setup, CheckSet checks)
    : setup_(setup), checks_(checks), test_(setup) {
  last_ = testing::snapshot(*test_.heap);
}

const SpanInfo* CheckedHeap::span_containing(const HeapSnapshot& snap, std::uintptr_t p) const {
  auto it = std::upper_bound(snap.spans.begin(), snap.spans.end(), p,
                             [](std::uintptr_t a, const SpanInfo& s) { return a < s.base; });
  if (it == snap.spans.begin()) return nullptr;
  --it;
  return p < span_end(*it) ? &*it : nullptr;
}

unsigned CheckedHeap::naive_next_free(const SpanInfo& s) {
  for (unsigned i = s.free_index; i < s.nelems; ++i) {
    const std::uintptr_t addr = s.base + std::uintptr_t{i} * s.elem_size;
    if (heap().find_object(reinterpret_cast<const void*>(addr)).kind == PointerKind::free_slot)
      return i;
  }
  return s.nelems;
}

void* CheckedHeap::allocate(Step& step, unsigned proc, std::size_t size, std::size_t align) {
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
  o.seed = oracle::mix(++allocations_);
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
  for_each_checked_end(o, [&](std::size_t from, std::size_t len) {
    oracle::write_pattern(static_cast<std::byte*>(p), o.seed, from, len);
  });
  objects_[base] = o;
  return p;
}

void CheckedHeap::free(Step& step, unsigned proc, std::uintptr_t base) {
  step.ptr = base;
  auto it = objects_.find(base);
  if (it != objects_.end() && !contents_intact(it->second))
    overlap_.push_back(fmt::format("object {:#x} contents changed while live", base));
  heap().proc(proc).free(reinterpret_cast<void*>(base));
  if (it != objects_.end()) it->second.pending = true;
}

// What the step's allocations returned: aligned, in an in-use span of the right class, cached by
// the allocating P, and in the slot the naive scan predicted (INV-A3); and the counters.
void CheckedHeap::check_allocations(StepDiff& d) {
  const Step& step = d.step;
  std::size_t allocated_now = 0;
  for (std::size_t k = 0; k < step.allocated.size(); ++k) {
    const std::uintptr_t p = step.allocated[k];
    if (p == 0) {
      d.bad(fmt::format("allocation {} of {} bytes returned nullptr", k, step.size));
      continue;
    }
    ++allocated_now;
    if (p % std::max<std::size_t>(step.align, 1) != 0)
      d.bad(fmt::format("{:#x} not aligned to {}", p, step.align));
    const SpanInfo* sp = span_containing(d.cur, p);
    const unsigned cls = testing::size_to_class(step.size, step.align);
    if (!sp || !sp->in_use) {
      d.bad(fmt::format("allocated {:#x} lies in no in-use span", p));
      continue;
    }
    if (sp->span_class != cls)
      d.bad(fmt::format("allocated {:#x} in class {}, want {}", p, sp->span_class, cls));
    if (cls != 0 && k + 1 == step.allocated.size() &&
        !(sp->location == SpanLocation::cached && sp->cache_proc == step.proc &&
          sp->sweepgen_delta == 3))
      d.bad("the allocating P does not cache the span it allocated from: " + describe(*sp));
    if (cls == 0 && (sp->base != p || sp->npages * kPage < step.size))
      d.bad(fmt::format("large object {:#x}+{} not at the start of a big enough span: {}", p,
                        step.size, describe(*sp)));
    if (k == 0) check_predicted_slot(d, *sp, p);
  }
  predicted_slot_.clear();
  const Stats& s0 = d.before.stats;
  const Stats& s1 = d.cur.stats;
  if (s1.allocations - s0.allocations != allocated_now)
    d.bad(fmt::format("stats.allocations grew by {}, {} objects returned",
                      s1.allocations - s0.allocations, allocated_now));
  const std::uint64_t want_frees = step.op == Op::free ? 1 : 0;
  if (s1.frees - s0.frees != want_frees)
    d.bad(fmt::format("stats.frees grew by {}, want {}", s1.frees - s0.frees, want_frees));
}

// INV-A3: the first allocation came from the slot the naive scan of the P's span predicted, and
// left no free slot behind in a span the P had been allocating from.
void CheckedHeap::check_predicted_slot(StepDiff& d, const SpanInfo& sp, std::uintptr_t p) {
  for (const auto& [sbase, slot] : predicted_slot_) {
    if (sp.base != sbase || p == sbase + std::uintptr_t{slot} * sp.elem_size) continue;
    d.bad(fmt::format("INV-A3: allocation returned slot {} but the naive scan says slot {}: {}",
                      (p - sbase) / sp.elem_size, slot, describe(sp)));
  }
  for (const auto& [sbase, slot] : predicted_slot_)
    if (sp.base != sbase && slot < d.prev_spans.at(sbase)->nelems)
      d.bad(fmt::format("allocation left the P's current span {:#x} with free slot {} for {}",
                        sbase, slot, describe(sp)));
}

// Collections (T9, ReusePolicy::owner): a span that an allocating step left with none of its
// pending frees and did not sweep was collected, and a collection takes every pending free of
// its span. The counters must say exactly that: one collection per such span, its pending frees
// as collected objects, one large free per T10; under next_cycle none of them moves.
void CheckedHeap::check_collections(StepDiff& d) {
  const Step& step = d.step;
  const oracle::ReusePolicy policy{setup_.reuse};
  std::uint64_t collected_objects = 0;
  if (policy.collects() && (step.op == Op::allocate || step.op == Op::fill)) {
    for (const auto& [base, x] : d.prev_spans) {
      auto it = d.cur_spans.find(base);
      if (d.swept.count(base) || it == d.cur_spans.end()) continue;
      const unsigned left = it->second->pending_frees;
      if (left == x->pending_frees) continue;  // not collected
      if (left != 0) d.bad("a collection left pending frees in its span: " + describe(*it->second));
      d.collected.insert(base);
      collected_objects += x->pending_frees;
    }
  }
  const Stats& s0 = d.before.stats;
  const Stats& s1 = d.cur.stats;
  if (s1.collections - s0.collections != d.collected.size() ||
      s1.collected_objects - s0.collected_objects != collected_objects ||
      s1.large_frees - s0.large_frees != d.released_at_free.size())
    d.bad(fmt::format(
        "reuse counters: {} collections of {} objects and {} large frees in this step, the "
        "snapshots show {} spans collected holding {} pending frees and {} large spans released",
        s1.collections - s0.collections, s1.collected_objects - s0.collected_objects,
        s1.large_frees - s0.large_frees, d.collected.size(), collected_objects,
        d.released_at_free.size()));
}

// The object table: pending objects reused only after their span's sweep (or, under owner
// reuse, its collection), pending objects in swept or collected spans reclaimed, everything else
// exactly as tracked, and per span tracked objects (live and pending) == alloc_count.
void CheckedHeap::check_objects(StepDiff& d) {
  const Step& step = d.step;
  for (std::uintptr_t o : reused_pending_) {
    const SpanInfo* was = span_containing(d.before, o);
    if (!was || !(d.swept.count(was->base) || d.collected.count(was->base)))
      d.bad(fmt::format("quarantine: pending object {:#x} reused without a sweep{} of its span", o,
                        oracle::ReusePolicy{setup_.reuse}.collects() ? " or collection" : ""));
  }
  reused_pending_.clear();
  for (auto it = objects_.begin(); it != objects_.end();) {
    TrackedObject& o = it->second;
    const SpanInfo* was = span_containing(d.before, o.base);
    const bool freed_now = step.op == Op::free && step.ptr == o.base;
    const bool reclaimed =
        o.pending && was &&
        (((d.swept.count(was->base) || d.collected.count(was->base)) && !freed_now) ||
         (freed_now && d.released_at_free.count(was->base)));
    if (reclaimed) {
      it = objects_.erase(it);
      continue;
    }
    PointerInfo info = heap().find_object(reinterpret_cast<const void*>(o.base));
    if (info.kind != PointerKind::object_start ||
        reinterpret_cast<std::uintptr_t>(info.base) != o.base || info.pending_free != o.pending ||
        info.size != o.usable) {
      d.bad(fmt::format("object {:#x} ({} bytes{}) is now kind {} pending {} size {}", o.base,
                        o.size, o.pending ? ", pending" : "", static_cast<int>(info.kind),
                        info.pending_free, info.size));
    }
    if (!o.pending && !contents_intact(o))
      d.bad(fmt::format("object {:#x} contents changed while live", o.base));
    ++it;
  }
  for (const SpanInfo& s : d.cur.spans) {
    unsigned n = 0, pending = 0;
    for (auto it = objects_.lower_bound(s.base); it != objects_.end() && it->first < span_end(s);
         ++it) {
      ++n;
      pending += it->second.pending;
    }
    if (n != s.alloc_count || pending != s.pending_frees)
      d.bad(fmt::format("span holds {} tracked objects ({} pending), the heap counts: {}", n,
                        pending, describe(s)));
  }
}

}  // namespace spanheap::props
