// page_heap_props: the page heap under large and small spans (DESIGN §8 Membership, Accounting).
// Covers: no two spans overlap; full coalescing (two adjacent free runs never both exist); a freed
// span is a free run only, with count 0 and an earlier sweepgen; accounting of span (in-use),
// mapped, released and reserved bytes — Stats against the snapshot against FakeOsMemory; the page
// map agrees with every span (find_object at each span's start, middle and last byte: object,
// slot, tail or free pages); live bytes never underflow.
#include "support/heap_model.hpp"
#include "support/prop_runner.hpp"

namespace spanheap::props {

// Large objects of many page counts next to small spans, freed and swept in any order, with free
// runs released to the fake OS after one idle cycle.
SPANHEAP_PROP(PageHeap, CoalescingAndAccounting, 100, 60, ()) {
  HeapSetup s;
  s.procs = 2;
  s.release_after_cycles = 1;
  s.arena_bytes = std::size_t{1} << 20;  // the smallest arena: growth spans several arenas
  CommandMix mix;
  mix.allocate = 10;
  mix.allocate_large = 25;
  mix.free = 30;
  mix.collect = 6;
  mix.sweep_one = 10;
  mix.small_sizes = {1024, 32768};
  CheckSet checks;
  checks.slots = false;
  check_stateful(s, mix, checks);
}

// A directed case: k groups of objects that each fill a span of their own (the 8 KiB and 32 KiB
// classes' spans, and large objects, one a span) side by side, any subset of the groups freed, two
// cycles: every freed run merges with its free neighbours, and the page heap ends with in-use +
// free pages equal to what the fake OS committed for it.
SPANHEAP_PROP(PageHeap, FreedNeighboursMerge, 30, 60, ()) {
  const auto sizes = *rc::gen::container<std::vector<std::size_t>>(
      rc::gen::oneOf(rc::gen::element<std::size_t>(8192, 32768),
                     rc::gen::map(rc::gen::inRange<std::size_t>(5, 20),
                                  [](std::size_t np) { return np * page_size - 100; })));
  // How many objects of `size` fill a span: a small class's slot count, or 1 for a large object.
  auto per_span = [](std::size_t size) -> std::size_t {
    const unsigned cls = testing::size_to_class(size, 16);
    if (cls == 0) return 1;
    for (const testing::SizeClassInfo& c : testing::size_classes())
      if (c.span_class == cls) return c.nelems;
    return 1;
  };
  const auto freed =
      *rc::gen::container<std::vector<bool>>(sizes.size(), rc::gen::arbitrary<bool>());
  HeapSetup setup;
  setup.procs = 1;
  CheckSet checks;
  checks.slots = false;
  CheckedHeap t(setup, checks);
  auto finish = [&](const Step& step) {
    auto v = t.finish(step);
    if (!v.empty()) RC_FAIL(join(v));
  };
  // Allocated in order from one P, each group fills a fresh span: nothing else uses its class.
  std::vector<std::vector<std::uintptr_t>> groups;
  for (std::size_t size : sizes) {
    groups.emplace_back();
    for (std::size_t k = per_span(size); k != 0; --k) {
      Step a;
      a.op = Op::allocate;
      a.proc = 0;
      a.size = size;
      groups.back().push_back(reinterpret_cast<std::uintptr_t>(t.allocate(a, 0, a.size)));
      finish(a);
    }
  }
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (!freed[i]) continue;
    for (std::uintptr_t ptr : groups[i]) {
      Step f;
      f.op = Op::free;
      f.proc = 0;
      t.free(f, 0, ptr);
      finish(f);
    }
  }
  for (int c = 0; c < 2; ++c) {
    Step cycle;
    cycle.op = Op::collect;
    t.heap().collect();
    finish(cycle);
    while (true) {
      Step sw;
      sw.op = Op::sweep_one;
      sw.result_bool = t.heap().sweep_one();
      finish(sw);
      if (!sw.result_bool) break;
    }
  }
  for (std::size_t i = 0; i < groups.size(); ++i) {
    for (std::uintptr_t ptr : groups[i]) {
      const SpanInfo* sp = t.span_containing(t.last(), ptr);
      RC_ASSERT(sp != nullptr);
      RC_ASSERT(sp->in_use == !freed[i]);
    }
  }
}

}  // namespace spanheap::props
