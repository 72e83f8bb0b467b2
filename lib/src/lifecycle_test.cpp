// Heap lifecycle and debug modes: destroying a heap while a thread is inside it (misuse, then a
// clean teardown once the call ends), and ASan poisoning of memory that holds no live object.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "check.hpp"
#include "heap_state.hpp"
#include "proc.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

TEST(Lifecycle, DestroyingAHeapWhileAThreadIsInsideIsMisuseAndWaits) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = test::deterministic(2, rec);
  o.os = &os;
  auto heap = std::make_unique<Heap>(o);
  ASSERT_NE(heap->allocate(100), nullptr);
  // Stand in for a thread that is in the middle of a heap call: hold P1.
  detail::ProcState& p1 = detail::acquire_proc(heap->state(), 1);
  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    heap.reset();
    destroyed = true;
  });
  // Bounded: a destructor that never reports must fail this test, not hang it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (rec.count(ErrorKind::misuse) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  if (rec.count(ErrorKind::misuse) == 0) {
    ADD_FAILURE() << "no misuse report 20 s after destruction began";
    detail::release_proc(p1);  // let the destructor finish
    destroyer.join();
    return;
  }
  // The destructor waits for the call to end before it unmaps anything.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(destroyed.load());
  EXPECT_GT(os.reserved_bytes(), 0u);
  detail::release_proc(p1);
  destroyer.join();
  EXPECT_TRUE(destroyed.load());
  EXPECT_EQ(os.reserved_bytes(), 0u);
  const auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].message,
            "spanheap: misuse: heap destroyed while 1 P(s) are inside heap calls; waiting for them "
            "to leave");
}

#if defined(SPANHEAP_ASAN)
Options poisoning() {
  Options o;
  o.procs = 1;
  o.sweepers = 0;
  o.gc_percent = 0;
  o.debug.poison_freed = true;
  return o;
}

TEST(Poison, ReadingAFreedObjectIsCaughtByAsan) {
  EXPECT_DEATH(
      {
        Heap heap(poisoning());
        auto* p = static_cast<volatile char*>(heap.allocate(64));
        heap.free(const_cast<char*>(p));
        (void)p[3];
      },
      "use-after-poison");
}

TEST(Poison, ReadingASlotThatWasNeverAllocatedIsCaughtByAsan) {
  EXPECT_DEATH(
      {
        Heap heap(poisoning());
        auto* p = static_cast<volatile char*>(heap.allocate(64));
        (void)p[64];  // the next slot of the span: no object there
      },
      "use-after-poison");
}

TEST(Poison, LiveObjectsAndReusedSlotsAreAccessible) {
  Heap heap(poisoning());
  auto* a = static_cast<char*>(heap.allocate(64));
  a[63] = 1;
  heap.free(a);
  heap.collect();
  while (heap.sweep_one()) {
  }
  auto* b = static_cast<char*>(heap.allocate(64));
  b[0] = 2;
  b[63] = 3;
  heap.free(b);
}
// Without ASan there is nothing to observe: the poisoning tests exist in the asan-ubsan preset.
#endif

}  // namespace
}  // namespace spanheap
