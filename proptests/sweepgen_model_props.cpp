// sweepgen_model_props: the rc::state model of spans, caches and the heap sweepgen (DESIGN §3).
// Covers DESIGN §8: Span — sweepgen ∈ {sg-2, sg-1, sg, sg+1, sg+3}, large spans never cached;
// Membership — one place per span, cached iff sg+1/sg+3 in exactly one P whose flush_gen matches;
// Cycle — all spans at sg or sg+3 and every cache flushed before the bump (checked as "termination
// swept every span that needed it"), flush_gen ∈ {sg, sg-2}, a P never allocates before flushing,
// "sweep done" exactly when nothing is unswept or stale, each span swept exactly once per cycle;
// Accounting — stats totals equal the sum over spans; and the Go bugs: #27997 (a freed span struct
// reused and cached while Ps are stale), #45315/#46500 (sweep done observed early), #57523 (sweep
// debt after a forced flush), and an allocation cache out of sync with the count (INV-A3).
// The checks themselves live in support/ (heap_oracle.hpp); this file chooses setups and scenarios.
#include <rapidcheck/state.h>

#include "support/heap_model.hpp"
#include "support/prop_runner.hpp"

namespace spanheap::props {
namespace {

HeapSetup setup(unsigned procs, FlushPolicy flush = FlushPolicy::lazy) {
  HeapSetup s;
  s.procs = procs;
  s.flush = flush;
  return s;
}

unsigned count_spans(const HeapSnapshot& snap, std::int64_t delta) {
  unsigned n = 0;
  for (const SpanInfo& s : snap.spans) n += s.in_use && s.sweepgen_delta == delta;
  return n;
}

}  // namespace

SPANHEAP_PROP(SweepgenModel, LazyTwoProcs, 100, 60, ()) { check_stateful(setup(2), CommandMix{}); }

SPANHEAP_PROP(SweepgenModel, LazyFourProcs, 50, 60, ()) { check_stateful(setup(4), CommandMix{}); }

SPANHEAP_PROP(SweepgenModel, EagerPolicy, 40, 60, ()) {
  check_stateful(setup(3, FlushPolicy::eager), CommandMix{});
}

// Cycle-heavy: many bumps with stale Ps left unflushed, so sg+1 spans meet every other command.
SPANHEAP_PROP(SweepgenModel, StaleCachesEverywhere, 60, 60, ()) {
  CommandMix mix;
  mix.begin_cycle = 12;
  mix.ragged_barrier = 1;
  mix.collect = 1;
  mix.sweep_one = 12;
  mix.proportional_sweep = 6;
  check_stateful(setup(3), mix);
}

// Go #27997/#28003: a span is swept empty and freed to the page heap; its pages are reused by a
// span of another class, cached by a P that flushed lazily, while other Ps are still stale (one
// of them caching a stale span). Sweepers must not take the new span (it is cached at sg+3), and
// "is it swept" must accept sg+3.
SPANHEAP_PROP(SweepgenModel, RecycledSpanStruct, 20, 40, ()) {
  const HeapSetup s = setup(3);
  Sut sut(s);
  Model model(s);
  run_script({make_allocate(0, 1024),  // #0: span A (class of 1 KiB) cached by P0
              make_allocate(2, 48),    // #1: P2 caches a span that will go stale
              make_flush_all(),        // span A to central, swept, partial
              make_free(1, 0)},        // #0 pending
             model, sut);
  const SpanInfo* a = sut.checked.span_containing(sut.checked.last(), sut.ptr.at(0));
  RC_ASSERT(a != nullptr);
  const std::uintptr_t base_a = a->base;
  run_script({make_begin_cycle(), make_sweep_one(), make_sweep_one()}, model, sut);
  const SpanInfo* gone = sut.checked.span_containing(sut.checked.last(), base_a);
  RC_ASSERT(gone != nullptr);
  RC_ASSERT(!gone->in_use);  // span A was swept empty and returned to the page heap
  run_script({make_allocate(1, 2048)}, model, sut);  // #2: a new class on P1, after its lazy flush
  const SpanInfo* b = sut.checked.span_containing(sut.checked.last(), sut.ptr.at(2));
  RC_ASSERT(b != nullptr);
  RC_ASSERT(b->base == base_a);  // the pages (and the span struct) were reused
  RC_ASSERT(b->sweepgen_delta == 3);
  RC_ASSERT(sut.checked.last().procs[2].flush_gen_delta == -2);  // P2 is still stale
  run_script({make_sweep_one(), make_sweep_one()}, model, sut);
  RC_ASSERT(!testing::sweep_done(sut.checked.heap()));  // P0 and P2 are stale
  check_generated(model, sut, CommandMix{});
}

// Go #45315/#46500 and the 1.12 hole: after a bump without a barrier, sweep_one until it returns
// false; "sweep done" must stay false while any P is stale, and turn true at the last flush.
SPANHEAP_PROP(SweepgenModel, SweepDoneNotEarly, 20, 40, ()) {
  const HeapSetup s = setup(2);
  Sut sut(s);
  Model model(s);
  const std::size_t small = *rc::gen::element<std::size_t>(16, 256, 1024);
  run_script({make_allocate(0, small), make_allocate(1, 256), make_allocate(0, 40000),
              make_fill(1, 1024, 9), make_free(0, 0), make_free(1, 3), make_begin_cycle()},
             model, sut);
  Heap& heap = sut.checked.heap();
  RC_ASSERT(count_spans(sut.checked.last(), 1) > 0);  // stale cached spans exist
  const unsigned unswept = count_spans(sut.checked.last(), -2);
  for (unsigned i = 0; i <= unswept; ++i) {
    run_script({make_sweep_one()}, model, sut);
    RC_ASSERT(!testing::sweep_done(heap));
  }
  RC_ASSERT(count_spans(sut.checked.last(), -2) == 0u);
  const unsigned first = *rc::gen::inRange(0u, 2u);
  run_script({make_flush_idle(first)}, model, sut);
  RC_ASSERT(!testing::sweep_done(heap));
  run_script({make_flush_idle(1 - first)}, model, sut);
  RC_ASSERT(testing::sweep_done(heap));
  check_generated(model, sut, CommandMix{});
}

// Go #57523: a forced flush of every cache during the sweep phase, then allocation from every P
// (and proportional sweep charged for it) must neither hang nor break any count.
SPANHEAP_PROP(SweepgenModel, SweepDebtAfterForcedFlush, 20, 40, ()) {
  const HeapSetup s = setup(3);
  Sut sut(s);
  Model model(s);
  std::vector<CommandPtr> script;
  for (unsigned p = 0; p < 3; ++p) {
    script.push_back(make_fill(p, 1024, 9));
    script.push_back(make_allocate(p, 16));
    script.push_back(make_allocate(p, 50000));
  }
  for (int id = 0; id < 33; id += 3) script.push_back(make_free(id % 3, id));
  script.push_back(make_begin_cycle());
  script.push_back(make_wake(0));
  script.push_back(make_flush_all());
  for (unsigned p = 0; p < 3; ++p) {
    script.push_back(make_fill(p, 1024, 9));
    script.push_back(make_proportional_sweep(std::size_t{1} << 20));
  }
  run_script(script, model, sut);
  const Stats st = sut.checked.heap().stats();
  RC_ASSERT(st.live_bytes <= st.span_bytes);
  RC_ASSERT(st.pending_frees <= st.live_objects);
  check_generated(model, sut, CommandMix{});
}

// The facade commands reach the fast paths they are there to model: once the heap knows the
// thread's P, facade allocations of a size class (one by the CAS entry, a fill whose later calls
// enter by the binding, its refill included) enter no general path, and the free of an object of
// that P's current span ends in the fast free. Then a Proc handle on the P bound to this thread,
// within one step: it revokes its own thread's binding and runs on that P.
SPANHEAP_PROP(SweepgenModel, FacadeReachesFastPaths, 20, 40, ()) {
  HeapSetup s = setup(*rc::gen::inRange(1u, 4u));
  s.reuse = *rc::gen::element(ReusePolicy::next_cycle, ReusePolicy::owner);
  RC_TAG(s.reuse == ReusePolicy::owner ? "reuse=owner" : "reuse=next_cycle");
  Sut sut(s);
  Model model(s);
  Heap& heap = sut.checked.heap();
  const std::size_t size = *rc::gen::element<std::size_t>(16, 48, 256, 1024);
  unsigned nelems = 1;
  for (const auto& c : testing::size_classes())
    if (c.span_class == testing::size_to_class(size, 16)) nelems = c.nelems;
  run_script({make_facade_allocate(size)}, model, sut);  // #0: the heap's first facade call
  RC_ASSERT(sut.checked.facade_proc().has_value());
  const CheckedHeap::FacadeCounts warm = sut.checked.facade_counts();
  run_script({make_facade_allocate(size),          // #1
              make_facade_fill(size, nelems + 1),  // #2 .. #nelems+2, a refill among them
              make_facade_free(static_cast<int>(nelems) + 2)},  // in the current span
             model, sut);
  const CheckedHeap::FacadeCounts& now = sut.checked.facade_counts();
  RC_ASSERT(now.allocations - warm.allocations == nelems + 2);
  RC_ASSERT(now.fast_allocations - warm.fast_allocations == nelems + 2);
  RC_ASSERT(now.frees == 1u);
  RC_ASSERT(now.fast_frees == 1u);

  const unsigned own = *sut.checked.facade_proc();
  Step mixed;
  mixed.op = Op::fill;
  mixed.size = size;
  sut.checked.allocate_facade(mixed, size);
  const bool binds = testing::binding(heap) != ProcBinding::off;
  RC_ASSERT(testing::proc_bound(heap, own) == binds);
  sut.checked.allocate(mixed, own, size);
  RC_ASSERT(!testing::proc_bound(heap, own));
  const std::vector<std::string> v = sut.checked.finish(mixed);
  if (!v.empty()) RC_FAIL("a Proc handle on the facade's bound P:\n" + join(v));
  check_generated(model, sut, CommandMix{});
}

}  // namespace spanheap::props
