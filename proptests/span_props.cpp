// span_props: the allocation state of one span (DESIGN §8 Span, Go's INV-A1..A4).
// Covers: 0 ≤ free_index ≤ nelems; every slot below free_index is allocated; alloc count = the
// allocated slots (alloc bits ∪ below free_index) as find_object sees them; free (pending) bits
// within the allocated slots; the alloc cache mirrors the complement of the bits from free_index
// (the next allocation returns exactly the slot a naive scan finds); after a sweep free_index = 0
// and the count equals the surviving population; sweep never increases the allocation count.
#include <algorithm>
#include <set>

#include "support/heap_model.hpp"
#include "support/prop_runner.hpp"

namespace spanheap::props {
namespace {

const testing::SizeClassInfo& class_info(unsigned cls) {
  static const auto table = testing::size_classes();
  for (const auto& c : table)
    if (c.span_class == cls) return c;
  RC_FAIL("no such class");
}

}  // namespace

// One P, a few classes, frees and every kind of sweep: the per-slot scan runs after every step.
SPANHEAP_PROP(Span, SlotEquationsUnderAnySequence, 80, 60, ()) {
  HeapSetup s;
  s.procs = 1;
  CommandMix mix;
  mix.small_sizes = {16, 1024, 3072};
  mix.allocate_large = 0;
  mix.free = 35;
  mix.fill = 6;
  mix.flush_idle = 1;
  mix.wake = 1;
  check_stateful(s, mix);
}

// A directed model of one span: allocate n objects of a class into a fresh span, free any subset,
// run a cycle and sweep, then allocate until the span is full again. The slots handed out must be
// exactly the model's free slots in ascending order (freed ones first, then never-used ones): the
// allocation cache and free index agree with a naive scan of the model's own bitmap.
SPANHEAP_PROP(Span, NextFreeSlotIsNaiveScan, 60, 100, ()) {
  const std::size_t size = *rc::gen::element<std::size_t>(8, 16, 48, 128, 1024, 3072, 8192, 28672);
  const unsigned cls = testing::size_to_class(size, 16);
  const auto& info = class_info(cls);
  const unsigned n = *rc::gen::inRange(1u, info.nelems + 1);
  const auto freed = *rc::gen::container<std::vector<bool>>(n, rc::gen::arbitrary<bool>());
  const bool sweep_by_cycle = *rc::gen::arbitrary<bool>();

  HeapSetup setup;
  setup.procs = 1;
  CheckSet checks;
  checks.slots = info.nelems <= 128;  // keep the per-step scans cheap for the tiny classes
  CheckedHeap t(setup, checks);
  auto finish = [&](const Step& step) {
    auto v = t.finish(step);
    if (!v.empty()) RC_FAIL(join(v));
  };
  Step fill;
  fill.op = Op::fill;
  fill.proc = 0;
  fill.size = size;
  std::vector<std::uintptr_t> ptrs;
  for (unsigned i = 0; i < n; ++i)
    ptrs.push_back(reinterpret_cast<std::uintptr_t>(t.allocate(fill, 0, size)));
  finish(fill);
  const std::uintptr_t base = ptrs[0];
  for (unsigned i = 0; i < n; ++i) RC_ASSERT(ptrs[i] == base + std::uintptr_t{i} * info.size);
  std::set<unsigned> free_slots;
  for (unsigned i = 0; i < n; ++i) {
    if (!freed[i]) continue;
    Step f;
    f.op = Op::free;
    f.proc = 0;
    t.free(f, 0, ptrs[i]);
    finish(f);
    free_slots.insert(i);
  }
  for (unsigned i = n; i < info.nelems; ++i) free_slots.insert(i);
  // A cycle makes the cached span stale; the barrier flush sweeps it (or a later sweep_one).
  Step cycle;
  cycle.op = sweep_by_cycle ? Op::collect : Op::begin_cycle;
  if (sweep_by_cycle)
    t.heap().collect();
  else
    testing::begin_cycle(t.heap());
  finish(cycle);
  if (!sweep_by_cycle) {
    Step flush;
    flush.op = Op::flush_idle;
    flush.proc = 0;
    flush.result_bool = testing::flush_idle(t.heap(), 0);
    finish(flush);
  }
  if (free_slots.size() == info.nelems) {
    // Every object was freed: the sweep returned the span to the page heap.
    const SpanInfo* sp = t.span_containing(t.last(), base);
    RC_ASSERT(sp == nullptr || !sp->in_use || sp->base != base || sp->span_class != cls);
    return;
  }
  const SpanInfo* sp = t.span_containing(t.last(), base);
  RC_ASSERT(sp != nullptr);
  RC_ASSERT(sp->alloc_count == info.nelems - free_slots.size());
  RC_ASSERT(sp->free_index == 0u);
  for (unsigned want : free_slots) {
    Step a;
    a.op = Op::allocate;
    a.proc = 0;
    a.size = size;
    auto p = reinterpret_cast<std::uintptr_t>(t.allocate(a, 0, size));
    finish(a);
    RC_ASSERT(p == base + std::uintptr_t{want} * info.size);
  }
  const SpanInfo* full = t.span_containing(t.last(), base);
  RC_ASSERT(full != nullptr);
  RC_ASSERT(full->alloc_count == info.nelems);
  // free_index may stop short of nelems: the slots above it are allocated (INV-A1 holds).
}

}  // namespace spanheap::props
