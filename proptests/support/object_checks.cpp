// object_checks: the checks of CheckedHeap::finish over the objects (heap_oracle.hpp): what the
// step's allocations returned, the owner's collections and their counters, and the object table
// against find_object and the spans' counts. step_oracle.cpp checks the spans.
#include "heap_oracle.hpp"
#include "step_diff.hpp"

#include <fmt/format.h>
#include <spanheap/oracle/shadow.hpp>

#include <algorithm>

namespace spanheap::props {
namespace {

constexpr std::size_t kPage = page_size;

std::size_t span_end(const SpanInfo& s) { return s.base + s.npages * kPage; }

}  // namespace

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
  predicted_for_ = -1;
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
