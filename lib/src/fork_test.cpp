// fork(): every live heap stays usable in the child (allocate, free, collect, verify, destroy),
// whatever the parent's threads were doing at the moment of the fork, and the parent carries on.
// Each child runs under alarm(): a hang shows as a child killed by SIGALRM, never as a hung test.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <thread>
#include <vector>

#include "check.hpp"
#include "test_util.hpp"

#if defined(SPANHEAP_TSAN)
// The children start sweeper threads again when they cycle; TSan's default kills a child that
// starts a thread after a multi-threaded fork (it cannot vouch for its own state there).
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }
#endif

namespace spanheap {
namespace {

// Seconds a child may take before it counts as hung (it needs well under one).
constexpr unsigned child_budget_s = 10;

// What a child does with a heap it inherited: exit codes name the step that failed.
int exercise_in_child(std::unique_ptr<Heap>& heap, testing::RecordingHandler& rec) {
  alarm(child_budget_s);
  std::vector<void*> objects;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 2000; i++) {
      void* p = heap->allocate(16 + (i % 40) * 24);
      if (p == nullptr) return 10;
      objects.push_back(p);
    }
    if (void* big = heap->allocate(200 * 1024))
      heap->free(big);
    else
      return 11;
    for (std::size_t i = 0; i < objects.size(); i += 2) heap->free(objects[i]);
    heap->collect();
    if (!heap->verify().ok()) return 12;
    std::vector<void*> kept;
    for (std::size_t i = 1; i < objects.size(); i += 2) kept.push_back(objects[i]);
    objects.swap(kept);
  }
  for (void* p : objects) heap->free(p);
  heap->collect();
  if (!heap->verify().ok()) return 13;
  if (rec.count() != 0) return 14;
  heap.reset();
  Options fresh;  // a heap created in the child: the heap list and the arena registry work
  fresh.procs = 1;
  Heap other(fresh);
  void* p = other.allocate(100);
  if (p == nullptr) return 15;
  other.free(p);
  other.collect();
  return 0;
}

// Forks `children` times while `mutators` threads allocate, free and collect on the heap, and
// returns a description of every child that did not exit 0.
std::vector<std::string> fork_under_load(const Options& options, unsigned mutators, int children,
                                         testing::RecordingHandler& rec) {
  auto heap = std::make_unique<Heap>(options);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < mutators; t++) {
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++) {
        mine.push_back(heap->allocate(8 + (i * 7 + t) % 3000));
        if (mine.size() > 300) {
          for (void* p : mine) heap->free(p);
          mine.clear();
        }
        if (i % 512 == t) heap->collect();
      }
      for (void* p : mine) heap->free(p);
    });
  }
  // Heaps created and destroyed meanwhile: their arenas enter and leave the registry (destruction
  // holds no P: only the registry lock keeps a child from inheriting a half-written registry).
  threads.emplace_back([&] {
    Options small = options;
    small.sweepers = 0;
    small.arena_bytes = std::size_t{1} << 20;
    while (!stop.load(std::memory_order_relaxed)) {
      Heap h(small);
      h.free(h.allocate(100));
    }
  });
  std::vector<std::string> failures;
  for (int c = 0; c < children && failures.size() < 3; c++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const pid_t pid = fork();
    if (pid == 0) _exit(exercise_in_child(heap, rec));
    if (pid < 0) {
      failures.push_back("fork failed");
      continue;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
      failures.push_back(fmt::format("child {} killed by signal {}{}", c, WTERMSIG(status),
                                     WTERMSIG(status) == SIGALRM ? " (hung)" : ""));
    } else if (WEXITSTATUS(status) != 0) {
      failures.push_back(fmt::format("child {} exited {}", c, WEXITSTATUS(status)));
    }
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  // The parent is unaffected: still consistent, still cycling.
  heap->collect();
  EXPECT_TRUE(heap->verify().ok());
  return failures;
}

TEST(Fork, ChildHeapsAreUsableWhileTheParentAllocatesAndCollects) {
  testing::RecordingHandler rec;
  Options o;
  o.procs = 2;
  o.sweepers = 2;
  o.arena_bytes = std::size_t{4} << 20;
  o.error_handler = rec.handler();
  const auto failures = fork_under_load(o, 2, 20, rec);
  EXPECT_TRUE(failures.empty()) << "of 20 children (stopping at 3 failures): "
                                << fmt::format("{}", fmt::join(failures, "; "));
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Fork, ChildRestartsItsSweepersWhenItCycles) {
  testing::RecordingHandler rec;
  Options o;
  o.procs = 1;
  o.sweepers = 1;
  o.gc_percent = 0;
  o.error_handler = rec.handler();
  auto heap = std::make_unique<Heap>(o);
  std::vector<void*> objects;
  for (int i = 0; i < 5000; i++) objects.push_back(heap->allocate(64));
  heap->collect();  // the sweeper exists and is parked (or about to park) at the fork
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(child_budget_s);
    const std::uint64_t before = heap->stats().swept_background;
    for (void* p : objects) heap->free(p);
    heap->collect();
    // Only a background sweeper sweeps while the child sleeps here.
    for (int i = 0; i < 2000 && heap->stats().swept_background == before; i++) usleep(1000);
    const bool swept = heap->stats().swept_background > before;
    heap.reset();  // joins the child's own sweeper
    _exit(swept && rec.count() == 0 ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "no background sweep in the child";
  for (void* p : objects) heap->free(p);
}

TEST(Fork, EveryHeapOfTheProcessSurvives) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.sweepers = 1;
  Heap a(o), b(o);
  void* pa = a.allocate(100);
  void* pb = b.allocate(5000);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(child_budget_s);
    a.free(pa);
    b.free(pb);
    a.collect();
    b.collect();
    const bool ok = a.verify().ok() && b.verify().ok() && a.allocate(100) != nullptr &&
                    b.allocate(5000) != nullptr && rec.count() == 0;
    a.~Heap();  // destroying both must not block on anything the parent's threads held
    b.~Heap();
    _exit(ok ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  a.free(pa);
  b.free(pb);
  EXPECT_EQ(rec.count(), 0u);
}

// A thread of the parent takes P0 from idle just after the fork's stop read it (a stop writes no
// idle P), and is about to give it back when the fork happens. The child has no such thread, so
// it must not inherit P0 as taken: its first call on P0, and its next stop, would wait forever.
TEST(Fork, APTakenInsideTheForksStopIsFreeInTheChild) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.binding = ProcBinding::off;  // every call takes its P by CAS
  Heap heap(o);
  void* x = heap.proc(0).allocate(64);
  const std::thread::id forker_id = std::this_thread::get_id();
  std::atomic<std::thread::id> taker_id{};
  std::atomic<bool> take_now{false};
  std::atomic<bool> taken{false};
  std::atomic<bool> forked{false};
  std::atomic<int> reads{0};
  testing::set_protocol_hook(
      heap,
      [&](testing::ProtocolPoint point) {
        const std::thread::id me = std::this_thread::get_id();
        if (point == testing::ProtocolPoint::stop_found_idle_proc && me == forker_id &&
            reads.fetch_add(1) == 0) {
          take_now = true;  // P0 read idle by the fork's stop: let the taker take it now
          test::wait_until([&] { return taken.load(); }, std::chrono::seconds(10));
        } else if (point == testing::ProtocolPoint::took_idle_proc && me == taker_id.load() &&
                   !taken.exchange(true)) {
          test::wait_until([&] { return forked.load(); },
                           std::chrono::seconds(10));  // across the fork
        }
      },
      {testing::ProtocolPoint::stop_found_idle_proc, testing::ProtocolPoint::took_idle_proc});
  void* y = nullptr;
  std::thread taker([&] {
    taker_id = std::this_thread::get_id();
    test::wait_until([&] { return take_now.load(); }, std::chrono::seconds(10));
    y = heap.proc(0).allocate(64);
  });
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(child_budget_s);
    testing::set_protocol_hook(heap, {});
    void* z = heap.proc(0).allocate(64);
    if (z != nullptr) heap.proc(0).free(z);
    heap.proc(1).free(x);
    heap.collect();
    const bool ok = z != nullptr && heap.verify().ok() && rec.count() == 0;
    _exit(ok ? 0 : 1);
  }
  forked = true;
  taker.join();
  testing::set_protocol_hook(heap, {});
  ASSERT_GT(pid, 0);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(taken.load()) << "the taker never took P0 inside the fork's stop";
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status)
                                 << (WTERMSIG(status) == SIGALRM ? " (hung on P0)" : "");
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_NE(y, nullptr);
  heap.free(y);
  heap.free(x);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_TRUE(heap.verify().ok());
}

}  // namespace
}  // namespace spanheap
