// Progress of stop-the-world, driven deterministically: each scenario pauses one thread inside a
// heap call at a protocol point (the testing seam's hooks), lets another thread block on it, and
// then checks that every thread finishes. The schedules are the ones random stress reaches only by
// luck: a thread that waits on a stale span whose owner P the stopper already holds, and a thread
// that waits for a P while the world is stopping. A regression is a deadlock, so each scenario
// runs under a watchdog that names the stuck threads and aborts (a failure, never a hang).
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <list>
#include <string>
#include <thread>

#include "affinity.hpp"
#include "heap_state.hpp"
#include "proc.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

using test::wait_until;

// Threads of one scenario, each with a name and a done flag. join_all() waits for all of them for
// `limit`; a thread still running then is a deadlock: the watchdog prints who is stuck and aborts,
// since a blocked thread cannot be joined or cancelled.
class Scenario {
 public:
  void spawn(std::string name, std::function<void()> body) {
    auto& t = threads_.emplace_back();
    t.name = std::move(name);
    std::atomic<bool>* done = &t.done;
    t.thread = std::thread([body = std::move(body), done] {
      body();
      done->store(true, std::memory_order_release);
    });
  }
  void join_all(const char* what, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const bool finished = wait_until(
        [&] {
          for (const Named& t : threads_)
            if (!t.done.load(std::memory_order_acquire)) return false;
          return true;
        },
        limit);
    if (!finished) {
      std::fprintf(stderr, "DEADLOCK in %s: no progress for %lld s; stuck:", what,
                   static_cast<long long>(limit.count()));
      for (const Named& t : threads_)
        if (!t.done.load()) std::fprintf(stderr, " %s", t.name.c_str());
      std::fprintf(stderr, "\n");
      std::abort();
    }
    for (Named& t : threads_) t.thread.join();
  }

 private:
  struct Named {
    std::string name;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Named> threads_;  // a list: a running thread holds a pointer to its done flag
};

Options two_procs(testing::RecordingHandler& rec) {
  Options o = test::deterministic(2, rec);
  o.binding = ProcBinding::off;  // every call takes its P by CAS: the P a thread holds is explicit
  return o;
}

detail::ProcStatus status_of(Heap& heap, unsigned i) {
  return heap.state().proc(i).status().load(std::memory_order_acquire);
}

// A stop has begun: from here on no thread keeps a P it takes (keep_taken).
bool world_stopping(Heap& heap) {
  return heap.state().world.stopped.load(std::memory_order_acquire);
}

// The freer holds P1 and frees an object of P0's stale cached span; the stopper (flush_all) has
// begun its stop, so P0 cannot be kept, and waits for P1. The freer cannot flush P0 and must not
// wait for it: it sees the world stopping, gives P1 up, and retries after the restart (sweeper.cpp,
// ensure_swept). That needs the stopper to publish its intent before it takes any P.
TEST(StopTheWorldProgress, AFreerOfAStaleSpanWhoseOwnerTheStopperHoldsGivesItsPUp) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* x = heap.proc(0).allocate(64);  // P0 caches x's span
  void* y = heap.proc(1).allocate(64);  // P1 caches a span too: its lazy flush is the pause point
  testing::begin_cycle(heap);           // both caches stale; x's span is at sg+1, owned by P0

  std::atomic<std::thread::id> freer_id{};
  std::atomic<bool> freer_holds_p1{false};
  std::atomic<bool> p0_stopped{false};
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    // The freer's lazy flush of P1 at acquire: it holds P1 here. Pause until the stop begins.
    if (point != testing::ProtocolPoint::flush_released_span ||
        std::this_thread::get_id() != freer_id.load() || freer_holds_p1.exchange(true))
      return;
    p0_stopped = wait_until([&] { return world_stopping(heap); }, std::chrono::seconds(10));
  });
  Scenario s;
  s.spawn("freer (holds P1, frees into P0's stale span)", [&] {
    freer_id = std::this_thread::get_id();
    heap.proc(1).free(x);
  });
  s.spawn("stopper (flush_all: stops the world, waits for P1)", [&] {
    wait_until([&] { return freer_holds_p1.load(); }, std::chrono::seconds(10));
    testing::flush_all(heap);
  });
  s.join_all("a freer waiting on a stale span whose owner P the stopper holds");
  testing::set_protocol_hook(heap, {});
  EXPECT_TRUE(freer_holds_p1.load()) << "the freer never paused holding P1";
  EXPECT_TRUE(p0_stopped.load()) << "the stopper never began its stop while the freer held P1";
  EXPECT_EQ(rec.count(), 0u) << "the free of a live object was reported";
  EXPECT_TRUE(heap.find_object(x).pending_free) << "the free did not happen";
  heap.free(y);
  EXPECT_VERIFIED(heap);
}

// A thread that wants P0 while the world is stopping sleeps until the restart, and the restart
// wakes it: the stopper has begun its stop and waits for P1, which a third thread holds in a call.
TEST(StopTheWorldProgress, AThreadWaitingForAPWhileTheWorldStopsIsWokenAtTheRestart) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* y = heap.proc(1).allocate(64);
  testing::begin_cycle(heap);  // P1 stale: its lazy flush at the next acquire is the pause point

  std::atomic<std::thread::id> holder_id{};
  std::atomic<bool> holder_in_call{false};
  std::atomic<bool> release_holder{false};
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::flush_released_span ||
        std::this_thread::get_id() != holder_id.load() || holder_in_call.exchange(true))
      return;
    wait_until([&] { return release_holder.load(); }, std::chrono::seconds(10));
  });
  std::atomic<bool> waiter_started{false};
  void* z = nullptr;
  Scenario s;
  s.spawn("holder (in a call on P1)", [&] {
    holder_id = std::this_thread::get_id();
    heap.proc(1).free(y);
  });
  s.spawn("stopper (stops the world, waits for P1)", [&] {
    wait_until([&] { return holder_in_call.load(); }, std::chrono::seconds(10));
    testing::flush_all(heap);
  });
  s.spawn("waiter (wants P0 while the world is stopping)", [&] {
    wait_until([&] { return world_stopping(heap); }, std::chrono::seconds(10));
    waiter_started = true;
    z = heap.proc(0).allocate(64);
  });
  // Let the waiter reach its sleep on P0 (the test passes either way; a lost wake-up needs it).
  wait_until([&] { return waiter_started.load(); }, std::chrono::seconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release_holder = true;
  s.join_all("a thread waiting for a P while the world is stopping");
  testing::set_protocol_hook(heap, {});
  EXPECT_TRUE(holder_in_call.load());
  EXPECT_TRUE(waiter_started.load());
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(rec.count(), 0u);
  heap.free(z);
  EXPECT_VERIFIED(heap);
}

// A thread takes P0 right after the stopper read it as idle (the stop writes no idle P): the taker
// must read the world stopping and give P0 back before it uses it, and take it again after the
// restart. A taker that kept it would run its call (here a lazy flush) inside the pause, which
// the stopper holds open at P1 until P0 is idle again.
TEST(StopTheWorldProgress, AThreadThatTakesAnIdlePTheStopHasReadGivesItBackUnused) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  void* x = heap.proc(0).allocate(64);
  testing::begin_cycle(heap);  // P0 stale: the taker's lazy flush at acquire is inside its call

  std::atomic<std::thread::id> stopper_id{};
  std::atomic<std::thread::id> taker_id{};
  std::atomic<int> stopper_reads{0};
  std::atomic<bool> take_now{false};
  std::atomic<int> takes{0};
  std::atomic<bool> stopper_at_p1{false};
  std::atomic<bool> given_back{false};
  std::atomic<int> flushes_inside_pause{0};
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    const std::thread::id me = std::this_thread::get_id();
    if (point == testing::ProtocolPoint::stop_found_idle_proc && me == stopper_id.load()) {
      const int n = stopper_reads.fetch_add(1);
      if (n == 0) {
        // P0 read idle: let the taker take it now, inside the stop.
        take_now = true;
        wait_until([&] { return takes.load() >= 1; }, std::chrono::seconds(10));
      } else if (n == 1) {
        // P1: the stop is not over until P0 is idle again (the taker gave it back).
        stopper_at_p1 = true;
        given_back = wait_until([&] { return status_of(heap, 0) == detail::ProcStatus::idle; },
                                std::chrono::seconds(10));
      }
    } else if (point == testing::ProtocolPoint::took_idle_proc && me == taker_id.load()) {
      // The taker holds P0 from its CAS; it reads the stop only after the stopper reached P1.
      if (takes.fetch_add(1) == 0)
        wait_until([&] { return stopper_at_p1.load(); }, std::chrono::seconds(10));
    } else if (point == testing::ProtocolPoint::flush_released_span && me == taker_id.load() &&
               world_stopping(heap)) {
      flushes_inside_pause++;
    }
  });
  Scenario s;
  s.spawn("taker (takes P0 inside the stopper's window)", [&] {
    taker_id = std::this_thread::get_id();
    wait_until([&] { return take_now.load(); }, std::chrono::seconds(10));
    heap.proc(0).free(x);
  });
  s.spawn("stopper (a snapshot)", [&] {
    stopper_id = std::this_thread::get_id();
    (void)testing::snapshot(heap);
  });
  s.join_all("a taker of an idle P the stop had read");
  testing::set_protocol_hook(heap, {});
  EXPECT_GE(stopper_reads.load(), 2) << "the stopper never read both Ps as idle";
  EXPECT_TRUE(stopper_at_p1.load()) << "the taker never held P0 while the stopper was at P1";
  EXPECT_TRUE(given_back.load()) << "the taker never gave P0 back while the world was stopped";
  EXPECT_EQ(flushes_inside_pause.load(), 0)
      << "the taker ran its call on P0 while the world was stopped";
  EXPECT_GE(takes.load(), 2) << "the taker did not take P0 again after the restart";
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_TRUE(heap.find_object(x).pending_free) << "the free did not happen";
  EXPECT_VERIFIED(heap);
}

// The same through the fast paths of a thread that takes its P with a CAS (binding off): its
// allocation takes its last P after the stop has read every P idle, and must give it back, sleep
// until the restart and only then allocate. An allocation that kept the P would return while the
// stopper still holds the world stopped at its read of the last P.
TEST(StopTheWorldProgress, AnUnboundFastPathThatTakesItsPInsideTheStopGivesItBack) {
  testing::RecordingHandler rec;
  Heap heap(two_procs(rec));
  std::atomic<std::thread::id> stopper_id{};
  std::atomic<bool> warmed{false};
  std::atomic<bool> take_now{false};
  std::atomic<bool> allocated{false};
  std::atomic<bool> allocated_while_stopped{false};
  std::atomic<bool> stopper_released{false};
  std::atomic<int> reads{0};
  testing::set_protocol_hook(
      heap,
      [&](testing::ProtocolPoint) {
        if (std::this_thread::get_id() != stopper_id.load() || reads.fetch_add(1) != 1) return;
        // Both Ps read idle: the world is stopped from here to the restart. Let the allocation
        // run, and hold the stop open long enough for a wrong one to return inside it.
        take_now = true;
        wait_until([&] { return allocated.load(); }, std::chrono::milliseconds(300));
        stopper_released = true;
      },
      {testing::ProtocolPoint::stop_found_idle_proc});
  void* obj = nullptr;
  Scenario s;
  s.spawn("allocator (its last P, taken with the fast path's CAS)", [&] {
    heap.free(heap.allocate(64));  // the thread's last P is now set: the fast path enters it
    warmed = true;
    wait_until([&] { return take_now.load(); }, std::chrono::seconds(10));
    obj = heap.allocate(64);
    allocated_while_stopped = !stopper_released.load();
    allocated = true;
  });
  s.spawn("stopper (a snapshot)", [&] {
    wait_until([&] { return warmed.load(); }, std::chrono::seconds(10));
    stopper_id = std::this_thread::get_id();
    (void)testing::snapshot(heap);
  });
  s.join_all("an unbound fast path taking its P inside the stop");
  testing::set_protocol_hook(heap, {});
  EXPECT_GE(reads.load(), 2) << "the stopper never read both Ps idle";
  EXPECT_TRUE(allocated.load());
  EXPECT_FALSE(allocated_while_stopped.load())
      << "an allocation returned while the world was stopped";
  ASSERT_NE(obj, nullptr);
  heap.free(obj);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

// The same give-up from a thread whose P is bound: its free of another P's object runs in the
// bound general path (free_holding_bound), waits on that P's stale span, sees the world stopping,
// gives its P up and takes it back with a CAS (before the stopper reaches it, or after the
// restart). The free then ends holding a running P, which it must release or bind again: a free
// that only cleared in_call, as a bound P's leave does, would leave the P taken for good, and a
// stop would wait for it forever (mutant 136).
TEST(StopTheWorldProgress, ABoundFreerThatGivesItsPUpForAStopLeavesItFreeAfterwards) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.binding = ProcBinding::automatic;
  Heap heap(o);
  if (testing::binding(heap) == ProcBinding::off) GTEST_SKIP() << "no membarrier: binding is off";

  // The freer binds a P (whichever its thread prefers) and keeps it between steps.
  std::atomic<int> step{0};
  std::atomic<int> freer_step_done{0};
  std::atomic<detail::ThreadRecord*> freer_record{nullptr};
  std::atomic<unsigned> freer_p{0};
  void* freer_obj = nullptr;
  std::thread freer_thread;
  auto run_freer_step = [&](int n) {
    step = n;
    ASSERT_TRUE(wait_until([&] { return freer_step_done.load() >= n; }, std::chrono::seconds(10)));
  };
  void* x = nullptr;
  freer_thread = std::thread([&] {
    wait_until([&] { return step.load() >= 1; }, std::chrono::seconds(10));
    freer_obj = heap.allocate(32);  // takes a P and binds it
    freer_record = detail::this_thread_record;
    freer_p = detail::last_used_proc.p;
    freer_step_done = 1;
    wait_until([&] { return step.load() >= 2; }, std::chrono::seconds(10));
    heap.free(heap.allocate(32));  // after the cycle: takes its P again, flushes it, binds it
    freer_step_done = 2;
    wait_until([&] { return step.load() >= 3; }, std::chrono::seconds(10));
    heap.free(x);  // another P's object, in that P's stale span
    freer_step_done = 3;
  });
  run_freer_step(1);
  const unsigned k = freer_p.load();
  const unsigned j = 1 - k;
  ASSERT_TRUE(testing::proc_bound(heap, k));
  void* a = heap.proc(j).allocate(16);  // P j caches a 16-byte span, flushed before x's
  x = heap.proc(j).allocate(64);
  testing::begin_cycle(heap);  // revokes the freer's binding; both caches stale, x's span sg+1
  run_freer_step(2);
  ASSERT_TRUE(testing::proc_bound(heap, k)) << "the freer did not bind its P again";
  ASSERT_NE(freer_record.load(), nullptr);

  // The holder takes P j and pauses in its lazy flush after the first span, with x's still
  // cached and stale, until the freer has given its P up for the stop.
  std::atomic<std::thread::id> holder_id{};
  std::atomic<bool> holder_paused{false};
  std::atomic<bool> freer_gave_up{false};
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::flush_released_span ||
        std::this_thread::get_id() != holder_id.load() || holder_paused.exchange(true))
      return;
    freer_gave_up = wait_until(
        [&] {
          return heap.state().world.stopped.load() && freer_step_done.load() < 3 &&
                 freer_record.load()->in_call.load() == 0;
        },
        std::chrono::seconds(10));
  });
  Scenario s;
  s.spawn("holder (takes P j, pauses in its flush)", [&] {
    holder_id = std::this_thread::get_id();
    heap.proc(j).free(a);
  });
  s.spawn("stopper (flush_all, once the freer waits on x's span)", [&] {
    wait_until([&] { return holder_paused.load(); }, std::chrono::seconds(10));
    step = 3;  // the freer enters its bound free of x and waits for P j's flush
    wait_until([&] { return freer_record.load()->in_call.load() == 1; }, std::chrono::seconds(10));
    testing::flush_all(heap);
  });
  s.spawn("freer's free of x", [&] {
    wait_until([&] { return freer_step_done.load() >= 3; }, std::chrono::seconds(20));
  });
  s.join_all("a bound freer giving its P up for a stop");
  testing::set_protocol_hook(heap, {});
  freer_thread.join();
  EXPECT_TRUE(freer_gave_up.load()) << "the freer never gave its P up while the world stopped";
  EXPECT_TRUE(heap.find_object(x).pending_free) << "the free did not happen";
  // No P may be left taken: another stop completes.
  Scenario after;
  after.spawn("collector", [&] { heap.collect(); });
  after.join_all("a stop after the bound freer's free");
  EXPECT_EQ(rec.count(), 0u);
  heap.free(freer_obj);
  EXPECT_VERIFIED(heap);
}

// The stop's first pass reads the status words as one array of lines (types.hpp,
// ProcStatusLine): packed sixteen to a line with binding on, one to a line with binding off. In
// both layouts it must find a P held at any index: the first, the last of a line, the first of
// the next, the last P, and a sweeper slot past the Ps. Each is taken as a call takes it (the
// CAS), the stop must wait for it, and it completes once the P is given back.
TEST(StopTheWorldProgress, TheStopWaitsForAPTakenAtAnyIndexInBothStatusLayouts) {
  for (const ProcBinding binding : {ProcBinding::automatic, ProcBinding::off}) {
    testing::RecordingHandler rec;
    Options o = test::deterministic(40, rec);
    o.binding = binding;
    o.sweepers = 1;
    // The expensive tier's verifier makes the pause of a stop that missed the P last longer than
    // the test watches for it; the debug tier's checks keep it to microseconds.
    o.checks = CheckLevel::debug;
    Heap heap(o);
    detail::HeapState& h = heap.state();
    if (testing::binding(heap) != binding) continue;  // automatic falls back to off (no membarrier)
    const unsigned stride = binding == ProcBinding::off ? detail::ProcStatusLine::words : 1;
    EXPECT_EQ(h.status_stride, stride);
    EXPECT_EQ(h.status_slots % 4, 0u);
    EXPECT_GE(h.status_slots, h.nslots);
    EXPECT_LT(h.status_slots, h.nslots + 4);
    for (unsigned i = 0; i < h.nslots; i++) {
      ASSERT_EQ(&h.proc(i).status(), &h.status_words()[i * stride]);
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(&h.proc(i).status()) % 64 == 0,
                binding == ProcBinding::off || i % detail::ProcStatusLine::words == 0);
    }
    for (const unsigned i : {0u, 15u, 16u, 39u, h.nslots - 1}) {
      SCOPED_TRACE(::testing::Message()
                   << "binding " << static_cast<int>(binding) << ", slot " << i);
      detail::ProcState& p = h.proc(i);
      // A sweeper slot may be the background sweeper's for a moment.
      ASSERT_TRUE(
          wait_until([&] { return detail::try_take_idle(h, p); }, std::chrono::seconds(10)));
      const std::uint64_t cycles = heap.stats().cycles;
      std::atomic<bool> collected{false};
      Scenario s;
      s.spawn("collector", [&] {
        heap.collect();
        collected = true;
      });
      // The stop has begun (or, if it missed the P, already ended).
      // (Not an ASSERT: the P is given back and the collector joined whatever happens.)
      const bool began = wait_until(
          [&] { return world_stopping(heap) || collected.load() || heap.stats().cycles != cycles; },
          std::chrono::seconds(10));
      if (!began) {
        ADD_FAILURE() << "the stop never began (World::stopped not published while a P was taken)";
        detail::release_proc(p);
        s.join_all("a stop that never began");
        return;
      }
      // A stop that missed the P runs its pause (the cycle count moves, `stopped` is cleared)
      // and then waits in the ragged barrier for the P's flush; one that saw it never gets there.
      const bool cycle_ran =
          wait_until([&] { return heap.stats().cycles != cycles || !world_stopping(heap); },
                     std::chrono::milliseconds(100));
      EXPECT_FALSE(cycle_ran) << "the stop did not wait for the P taken at slot " << i;
      detail::release_proc(p);
      s.join_all("a stop waiting for a taken P");
      EXPECT_EQ(heap.stats().cycles, cycles + 1);
    }
    EXPECT_EQ(rec.count(), 0u);
    EXPECT_VERIFIED(heap);
  }
}

}  // namespace
}  // namespace spanheap
