// Tests of P binding (docs/design.md "P binding"): a thread keeps its P between calls, and every
// revoker — a stop-the-world, a thread that finds no idle P, an explicit Proc handle — takes it
// back only once the binder is outside its call.
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "heap_state.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

Options bound_options(unsigned procs, testing::RecordingHandler& rec) {
  Options o = test::deterministic(procs, rec);
  o.binding = ProcBinding::automatic;
  return o;
}

// Skips a test when this build or machine cannot bind (no membarrier): the protocol is then off.
#define SKIP_UNLESS_BINDING(heap) \
  if (testing::binding(heap) == ProcBinding::off) GTEST_SKIP() << "no membarrier: binding is off"

TEST(Binding, AThreadKeepsItsPBetweenCalls) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  EXPECT_FALSE(testing::proc_bound(heap, 0));
  std::vector<void*> v;
  for (int i = 0; i < 100; i++) v.push_back(heap.allocate(48));
  EXPECT_TRUE(testing::proc_bound(heap, 0));  // bound at the first call's end
  for (void* p : v) heap.free(p);
  EXPECT_TRUE(testing::proc_bound(heap, 0));
  EXPECT_EQ(heap.stats().revocations, 0u);
  EXPECT_EQ(rec.count(), 0u);
}

// testing::prefer_proc names the facade's first P, so that a single-threaded driver meets the
// same P in every process; once the thread has called the heap it changes nothing.
TEST(Binding, PreferProcNamesTheFacadesFirstP) {
  for (unsigned want = 0; want < 4; want++) {
    testing::RecordingHandler rec;
    Heap heap(bound_options(4, rec));
    EXPECT_FALSE(testing::prefer_proc(heap, 4));  // not a P
    ASSERT_TRUE(testing::prefer_proc(heap, want));
    void* p = heap.allocate(48);
    if (testing::binding(heap) != ProcBinding::off) {
      EXPECT_TRUE(testing::proc_bound(heap, want));
    }
    // (A snapshot stops the world, which revokes the binding: the thread takes P `want` again.)
    const testing::HeapSnapshot snap = testing::snapshot(heap);
    EXPECT_EQ(test::span_containing(snap, p)->cache_proc, static_cast<int>(want));
    EXPECT_FALSE(testing::prefer_proc(heap, (want + 1) % 4));  // the thread has used the heap
    heap.free(p);
    void* q = heap.allocate(48);
    EXPECT_EQ(test::span_containing(testing::snapshot(heap), q)->cache_proc,
              static_cast<int>(want));
    heap.free(q);
    EXPECT_EQ(rec.count(), 0u);
  }
}

// A thread that alternates between two heaps keeps one P of each: its binding in the heap it
// left stays (nothing revokes it until a stop or another thread needs the P), and when it comes
// back it takes that P again rather than an idle one, which it would then bind too: one P more
// stranded with its cache at every switch, until every P of the heap was bound to the thread.
TEST(Binding, AThreadAlternatingBetweenHeapsKeepsOnePOfEach) {
  testing::RecordingHandler rec;
  Heap a(bound_options(4, rec));
  Heap b(bound_options(4, rec));
  SKIP_UNLESS_BINDING(a);
  const auto bound_ps = [](const Heap& h) {
    unsigned n = 0;
    for (unsigned i = 0; i < h.procs(); i++) n += testing::proc_bound(h, i) ? 1 : 0;
    return n;
  };
  std::vector<void*> in_a, in_b;
  for (int round = 0; round < 12; round++) {
    for (int i = 0; i < 3; i++) in_a.push_back(a.allocate(48));
    EXPECT_EQ(bound_ps(a), 1u) << "round " << round;
    for (int i = 0; i < 3; i++) in_b.push_back(b.allocate(48));
    EXPECT_EQ(bound_ps(b), 1u) << "round " << round;
    a.free(in_a.back());
    in_a.pop_back();
    EXPECT_EQ(bound_ps(a), 1u) << "round " << round;
  }
  EXPECT_EQ(bound_ps(a), 1u);
  EXPECT_EQ(bound_ps(b), 1u);
  for (void* p : in_a) a.free(p);
  for (void* p : in_b) b.free(p);
  EXPECT_VERIFIED(a);
  EXPECT_VERIFIED(b);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Binding, OffNeverBinds) {
  testing::RecordingHandler rec;
  Options o = bound_options(1, rec);
  o.binding = ProcBinding::off;
  Heap heap(o);
  for (int i = 0; i < 100; i++) heap.free(heap.allocate(48));
  EXPECT_FALSE(testing::proc_bound(heap, 0));
  EXPECT_EQ(testing::binding(heap), ProcBinding::off);
}

TEST(Binding, AStopOfTheWorldRevokesEveryBindingAndTheThreadBindsAgain) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(2, rec));
  SKIP_UNLESS_BINDING(heap);
  void* a = heap.allocate(64);
  ASSERT_TRUE(testing::proc_bound(heap, 0) || testing::proc_bound(heap, 1));
  heap.collect();
  EXPECT_GE(heap.stats().revocations, 1u);
  EXPECT_FALSE(testing::proc_bound(heap, 0) || testing::proc_bound(heap, 1));
  EXPECT_VERIFIED(heap);  // INV-B1: with the world stopped no P is bound
  heap.free(a);
  void* b = heap.allocate(64);
  EXPECT_TRUE(testing::proc_bound(heap, 0) || testing::proc_bound(heap, 1));
  heap.free(b);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Binding, AnotherThreadTakesABoundPAndTheBinderCarriesOn) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  std::vector<void*> mine;
  for (int i = 0; i < 10; i++) mine.push_back(heap.allocate(32));
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  std::vector<void*> theirs;
  std::thread t([&] {
    for (int i = 0; i < 10; i++) theirs.push_back(heap.allocate(32));  // the only P is bound
  });
  t.join();
  EXPECT_EQ(heap.stats().revocations, 1u);
  EXPECT_FALSE(testing::proc_bound(heap, 0));  // vetoed: not bound again right away
  for (void* p : theirs) heap.free(p);
  for (void* p : mine) heap.free(p);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// A thread that exits while bound gives its record back; the P it bound stays bound to that
// record until someone needs it, and taking it then needs no cooperation from the dead thread.
TEST(Binding, APBoundByAThreadThatExitedIsTakenBack) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  void* theirs = nullptr;
  std::thread t([&] {
    theirs = heap.allocate(32);
    heap.free(heap.allocate(32));
  });
  t.join();
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  heap.free(theirs);  // the only P is bound to the exited thread
  EXPECT_EQ(heap.stats().revocations, 1u);
  std::thread u([&] { heap.free(heap.allocate(64)); });  // a new thread may reuse the record
  u.join();
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// A binding is the binder's alone: once another thread has bound the P, the first binder's calls
// must revoke that binding, never enter on it (two threads would share one cache).
TEST(Binding, AFormerBinderCannotEnterAnotherThreadsBinding) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  heap.free(heap.allocate(32));
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  std::thread t([&] {
    // Revokes our binding, then outlasts the veto and binds the P itself.
    for (int i = 0; i < 1000; i++) heap.free(heap.allocate(32));
  });
  t.join();
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  const std::uint64_t before = heap.stats().revocations;
  heap.free(heap.allocate(32));
  EXPECT_EQ(heap.stats().revocations, before + 1) << "entered the other thread's binding";
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// ProcState::entry, the one word a bound call checks, names the binder exactly while the P is
// bound, and a revocation clears it: a thread whose binding was taken cannot enter again.
TEST(Binding, TheEntryWordNamesTheBinderOnlyWhileThePIsBound) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  const detail::ProcState& p = heap.state().proc(0);
  EXPECT_EQ(p.entry.load(), nullptr);
  heap.free(heap.allocate(32));
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  EXPECT_NE(p.entry.load(), nullptr);
  EXPECT_EQ(p.entry.load(), p.binder.load());
  std::thread t([&] { heap.free(heap.allocate(32)); });  // revokes, and the veto keeps it unbound
  t.join();
  EXPECT_EQ(heap.stats().revocations, 1u);
  EXPECT_FALSE(testing::proc_bound(heap, 0));
  EXPECT_EQ(p.entry.load(), nullptr);
  EXPECT_EQ(p.binder.load(), nullptr);
  heap.collect();  // a stop revokes nothing now, and verify() finds no entry (INV-B1)
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// A revocation that lands right after a binding is published (status bound) must find the entry
// word already set, so that its clearing shuts the binder out. Were entry written after the
// status, the revoker would clear nothing and the late write would let the binder back into a P
// another thread holds or has released.
TEST(Binding, ARevocationRightAfterTheBindingIsPublishedShutsTheBinderOut) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  const detail::ProcState& p = heap.state().proc(0);
  std::atomic<bool> revoked{false};
  std::thread revoker;
  testing::set_protocol_hook(
      heap,
      [&](testing::ProtocolPoint) {
        if (revoker.joinable()) return;
        revoker = std::thread([&] {
          heap.free(heap.allocate(32));  // the only P is bound: this revokes it
          revoked = true;
        });
        while (!revoked.load()) std::this_thread::yield();  // bounded: the revoker never waits
      },                                                    // for us (we are in no bound call)
      {testing::ProtocolPoint::binding_published});
  void* a = heap.allocate(32);  // takes P0 with a CAS and binds it as it leaves: the hook runs
  revoker.join();
  testing::set_protocol_hook(heap, {});
  EXPECT_EQ(heap.stats().revocations, 1u);
  EXPECT_FALSE(testing::proc_bound(heap, 0));
  EXPECT_EQ(p.entry.load(), nullptr) << "the revoked binder can still enter P0";
  heap.free(a);
  EXPECT_EQ(heap.stats().revocations, 1u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Binding, AnExplicitProcHandleTakesTheCallersOwnBinding) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  void* a = heap.allocate(32);
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  void* b = heap.proc(0).allocate(32);  // our own binding: revoked without waiting
  EXPECT_FALSE(testing::proc_bound(heap, 0));
  heap.proc(0).free(b);
  heap.free(a);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// A full span of `heap`'s 256-byte class evicted to central, its first threshold - 1 objects
// freed: the free of v[threshold - 1], a bound call, makes it worth collecting and passes
// ProtocolPoint::free_move_to_partial with the P held.
bool some_proc_bound(const Heap& heap, unsigned procs) {
  for (unsigned i = 0; i < procs; i++)
    if (testing::proc_bound(heap, i)) return true;
  return false;
}
struct WorthCollecting {
  std::vector<void*> v, keep;
  std::size_t threshold = 0;
  // Frees what the free of v[threshold - 1] left live.
  void free_rest(Heap& heap) const {
    for (std::size_t i = threshold; i < v.size(); i++) heap.free(v[i]);
    for (void* k : keep) heap.free(k);
  }
};
WorthCollecting one_free_from_collecting(Heap& heap, unsigned procs) {
  WorthCollecting w;
  w.v.push_back(heap.allocate(256));
  const auto snap = testing::snapshot(heap);
  const unsigned nelems = test::span_containing(snap, w.v[0])->nelems;
  while (w.v.size() < nelems) w.v.push_back(heap.allocate(256));
  w.keep =
      test::evict_to_central(heap, 256, w.v[0], [&](std::size_t n) { return heap.allocate(n); });
  for (int i = 0; i < 4096 && !some_proc_bound(heap, procs); i++) heap.free(heap.allocate(16));
  w.threshold = testing::collect_threshold(static_cast<unsigned>(w.v.size()));
  for (std::size_t i = 0; i + 1 < w.threshold; i++) heap.free(w.v[i]);
  return w;
}

// The revoker's wait: a stop-the-world requested while the binder is inside a call completes only
// after that call has ended. The binder sits in a free's protocol hook while another thread runs
// collect(); the cycle must not finish meanwhile.
TEST(Binding, AStopWaitsForTheBinderToLeaveItsCall) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(1, rec));
  SKIP_UNLESS_BINDING(heap);
  WorthCollecting w = one_free_from_collecting(heap, 1);
  // Its snapshots stopped the world, which revoked the binding: calls bound the thread again.
  ASSERT_TRUE(testing::proc_bound(heap, 0));
  std::atomic<bool> cycle_done{false};
  bool done_inside = true;
  std::thread stopper;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::free_move_to_partial || stopper.joinable()) return;
    stopper = std::thread([&] {
      heap.collect();
      cycle_done.store(true);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    done_inside = cycle_done.load();
  });
  heap.free(w.v[w.threshold - 1]);  // a bound call: makes the span worth collecting, runs the hook
  ASSERT_TRUE(stopper.joinable()) << "the hook did not run";
  stopper.join();
  testing::set_protocol_hook(heap, {});
  EXPECT_FALSE(done_inside) << "the stop finished while the binder was inside its call";
  EXPECT_TRUE(cycle_done.load());
  EXPECT_GE(heap.stats().revocations, 1u);
  w.free_rest(heap);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// A hook (or error handler) run inside a bound call may call the heap: its calls take another P,
// never the one the outer call holds, and the outer call's in_call stays set (a revoker waits on
// it). Two rounds of calls: the second would find a P the first had bound if a call bound its P
// from inside the callback.
TEST(Binding, ACallbackInsideABoundCallCallsTheHeapOnAnotherP) {
  testing::RecordingHandler rec;
  Heap heap(bound_options(2, rec));
  SKIP_UNLESS_BINDING(heap);
  WorthCollecting w = one_free_from_collecting(heap, 2);
  ASSERT_TRUE(some_proc_bound(heap, 2));
  bool ran = false, inside = false, still_inside = false, bound_after = false;
  std::vector<void*> nested;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::free_move_to_partial || ran) return;
    ran = true;
    inside = testing::inside_bound_call();
    for (int round = 0; round < 2; round++) {
      for (int i = 0; i < 8; i++) nested.push_back(heap.allocate(16 + 16 * i));
      for (int i = 0; i < 4; i++) {
        heap.free(nested.back());
        nested.pop_back();
      }
    }
    still_inside = testing::inside_bound_call();
    bound_after = some_proc_bound(heap, 2);
  });
  heap.free(w.v[w.threshold - 1]);
  testing::set_protocol_hook(heap, {});
  ASSERT_TRUE(ran) << "the hook did not run";
  EXPECT_TRUE(inside) << "the hook did not run inside a bound call";
  EXPECT_TRUE(still_inside) << "a nested call cleared the outer call's in_call";
  EXPECT_TRUE(bound_after);
  EXPECT_EQ(rec.count(), 0u) << rec.last()->message;
  for (void* p : nested) heap.free(p);
  w.free_rest(heap);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// Has `heap` (clobber_freed on, 2 Ps) report from inside a bound call: an object freed, then
// reclaimed and clobbered by a cycle, written after its free, and allocated again on a bound P,
// whose check at allocation reports the write. The caller frees `again` and `anchor`.
struct ReportInsideACall {
  void* anchor = nullptr;
  void* written = nullptr;  // the object written after its free
  void* again = nullptr;    // what the reporting allocation returned: the same slot
};
ReportInsideACall report_inside_a_bound_call(Heap& heap) {
  ReportInsideACall r;
  r.anchor = heap.allocate(16, 8);
  auto* x = static_cast<unsigned char*>(heap.allocate(16, 8));
  r.written = x;
  heap.free(x);
  heap.collect();  // the barrier's sweep reclaims and clobbers x
  while (heap.sweep_one()) {
  }
  for (int i = 0; i < 4096 && !some_proc_bound(heap, 2); i++) heap.free(heap.allocate(48));
  EXPECT_TRUE(some_proc_bound(heap, 2));
  x[0] = 0x00;
  r.again = heap.allocate(16, 8);  // reports the write, from inside the call
  return r;
}

// The same for the error handler, with a report from inside a bound call (a write after free found
// at reallocation) and a handler that calls a second heap twice: had the first call bound that
// heap's P to the thread, the second would enter it through the bound fast path and, leaving,
// clear the in_call of the call that reported.
TEST(Binding, AnErrorHandlerInsideABoundCallCallsAnotherHeap) {
  testing::RecordingHandler rec_b;
  Heap other(bound_options(1, rec_b));
  SKIP_UNLESS_BINDING(other);
  bool ran = false, inside = false, still_inside = false;
  std::vector<ErrorReport> reports;
  Options o = bound_options(2, rec_b);
  o.debug.clobber_freed = true;
  o.error_handler = [&](const ErrorReport& r) {
    reports.push_back(r);
    ran = true;
    inside = testing::inside_bound_call();
    for (int i = 0; i < 2; i++) other.free(other.allocate(64));
    still_inside = testing::inside_bound_call();
  };
  Heap heap(o);
  const ReportInsideACall r = report_inside_a_bound_call(heap);
  ASSERT_EQ(r.again, r.written);
  ASSERT_TRUE(ran) << "no report";
  EXPECT_THAT(reports.at(0).message, ::testing::HasSubstr("write after free"));
  EXPECT_TRUE(inside) << "the report did not come from inside a bound call";
  EXPECT_TRUE(still_inside) << "a call from the handler cleared the reporting call's in_call";
  EXPECT_EQ(rec_b.count(), 0u) << rec_b.last()->message;
  heap.free(r.again);
  heap.free(r.anchor);
  EXPECT_VERIFIED(heap);
  EXPECT_VERIFIED(other);
}

// The same with a binding left in the other heap: the thread called it first, so its first
// choice there is a P bound to it. From inside a call it cannot take its own binding back (a
// revoke of it would wait for the call it is inside): it takes the other heap's idle P.
TEST(Binding, AnErrorHandlerCallsAnotherHeapWhereItLeftABinding) {
  testing::RecordingHandler rec_b;
  Heap other(bound_options(2, rec_b));
  SKIP_UNLESS_BINDING(other);
  other.free(other.allocate(64));
  ASSERT_TRUE(some_proc_bound(other, 2));
  bool ran = false;
  Options o = bound_options(2, rec_b);
  o.debug.clobber_freed = true;
  o.error_handler = [&](const ErrorReport&) {
    ran = true;
    for (int i = 0; i < 2; i++) other.free(other.allocate(64));
  };
  Heap heap(o);
  const ReportInsideACall r = report_inside_a_bound_call(heap);
  ASSERT_TRUE(ran) << "no report";
  EXPECT_EQ(rec_b.count(), 0u) << rec_b.last()->message;
  heap.free(r.again);
  heap.free(r.anchor);
  EXPECT_VERIFIED(heap);
  EXPECT_VERIFIED(other);
}

// With one P, such a call needs the P its own outer call holds: it fails at once with a message
// rather than wait for a call that cannot end (an alarm bounds the wait if it does not).
TEST(BindingDeathTest, ACallbackThatNeedsItsOwnCallsPFailsFast) {
  EXPECT_DEATH(
      {
        testing::RecordingHandler rec;
        Heap heap(bound_options(1, rec));
        if (testing::binding(heap) == ProcBinding::off) std::abort();
        WorthCollecting w = one_free_from_collecting(heap, 1);
        testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
          if (point == testing::ProtocolPoint::free_move_to_partial) heap.free(heap.allocate(16));
        });
        alarm(20);
        heap.free(w.v[w.threshold - 1]);
      },
      "needs the P bound to this thread, whose own call has not returned");
}

}  // namespace
}  // namespace spanheap
