// Heap lifecycle and debug modes: destroying a heap while a thread is inside it (misuse, then a
// clean teardown once the call ends), and ASan poisoning of memory that holds no live object.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "check.hpp"
#include "heap_state.hpp"
#include "proc.hpp"
#include "test_util.hpp"
#if defined(SPANHEAP_ASAN)
#include <sanitizer/asan_interface.h>
#endif

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

// An OS layer that keeps poison (OsMemory::keeps_poison) over the system's, as the fuzz
// executor's recycling layer does: every commit is handed over poisoned, and at unreserve it
// counts the committed bytes the heap left accessible, which the contract says are none.
class PoisonKeepingOs final : public OsMemory {
 public:
  void* reserve(std::size_t size, std::size_t align) override {
    return system_memory().reserve(size, align);
  }
  bool commit(void* p, std::size_t size) override {
    if (!system_memory().commit(p, size)) return false;
    ASAN_POISON_MEMORY_REGION(p, size);
    std::lock_guard lock(mu_);
    committed_.emplace_back(static_cast<char*>(p), size);
    return true;
  }
  void release(void* p, std::size_t size) override { system_memory().release(p, size); }
  void unreserve(void* p, std::size_t size) override {
    auto* base = static_cast<char*>(p);
    {
      std::lock_guard lock(mu_);
      std::erase_if(committed_, [&](const std::pair<char*, std::size_t>& c) {
        if (c.first < base || c.first >= base + size) return false;
        for (std::size_t i = 0; i < c.second; i += 8)
          accessible_ += __asan_address_is_poisoned(c.first + i) == 0 ? 8 : 0;
        return true;
      });
      unreserves_++;
    }
    ASAN_UNPOISON_MEMORY_REGION(p, size);  // the addresses go back to the system clean
    system_memory().unreserve(p, size);
  }
  bool keeps_poison() const noexcept override { return true; }

  std::size_t accessible_at_unreserve() const {
    std::lock_guard lock(mu_);
    return accessible_;
  }
  unsigned unreserves() const {
    std::lock_guard lock(mu_);
    return unreserves_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<char*, std::size_t>> committed_;
  std::size_t accessible_ = 0;
  unsigned unreserves_ = 0;
};

// Small and large objects (one of 2 MiB, past ASan's threshold for clearing shadow pages by
// remapping), written whole, so a page the heap did not unpoison for its object is reported.
std::vector<void*> fill(Heap& heap) {
  std::vector<void*> out;
  for (const std::size_t size : {std::size_t{16}, std::size_t{4000}, std::size_t{40000},
                                 std::size_t{300000}, std::size_t{2} << 20}) {
    for (int i = 0; i < 3; i++) {
      auto* p = static_cast<char*>(heap.allocate(size));
      std::memset(p, 0x5A, size);
      out.push_back(p);
    }
  }
  return out;
}

TEST(PoisonKeepingOs, AnEmptyHeapHandsItsMemoryBackPoisonedWithoutAPassOverItsArenas) {
  PoisonKeepingOs os;
  {
    Options o = poisoning();
    o.os = &os;
    Heap heap(o);
    for (void* p : fill(heap)) heap.free(p);
    heap.collect();
    while (heap.sweep_one()) {
    }
    EXPECT_TRUE(heap.verify().ok());
  }
  EXPECT_GT(os.unreserves(), 0u);
  EXPECT_EQ(os.accessible_at_unreserve(), 0u);
}

TEST(PoisonKeepingOs, AHeapStillHoldingObjectsPoisonsThemBeforeItsArenasGoBack) {
  PoisonKeepingOs os;
  {
    Options o = poisoning();
    o.os = &os;
    Heap heap(o);
    (void)fill(heap);
  }
  EXPECT_EQ(os.accessible_at_unreserve(), 0u);
}

TEST(PoisonKeepingOs, AHeapThatDoesNotPoisonUnpoisonsWhatItCommitsAndPoisonsItBack) {
  PoisonKeepingOs os;
  {
    Options o = poisoning();
    o.debug.poison_freed = false;
    o.os = &os;
    Heap heap(o);
    std::vector<void*> objs = fill(heap);
    for (std::size_t i = 0; i < objs.size(); i += 2) heap.free(objs[i]);
    heap.collect();
    (void)fill(heap);  // reused slots and pages are accessible too
  }
  EXPECT_EQ(os.accessible_at_unreserve(), 0u);
}

// Growths that fail after reserving (commits refused past a cap, through a FakeOsMemory, which
// passes keeps_poison on) give their metadata back poisoned too, whichever commit failed: the
// arena's header page, its tables or its pages.
TEST(PoisonKeepingOs, FailedGrowthsHandTheirMemoryBackPoisoned) {
  PoisonKeepingOs under;
  testing::FakeOsMemory os(under);
  ASSERT_TRUE(os.keeps_poison());
  testing::RecordingHandler rec;
  {
    Options o = poisoning();
    o.os = &os;
    o.error_handler = rec.handler();
    Heap heap(o);
    void* small = heap.allocate(64);
    for (std::size_t pages = 0; pages <= 4; pages++) {
      os.cap_committed(os.committed_bytes() + pages * page_size);
      EXPECT_EQ(heap.allocate(std::size_t{8} << 20), nullptr) << pages;
    }
    os.cap_committed(0);
    auto* big = static_cast<char*>(heap.allocate(std::size_t{8} << 20));
    ASSERT_NE(big, nullptr);
    std::memset(big, 1, std::size_t{8} << 20);
    heap.free(big);
    heap.free(small);
  }
  EXPECT_GE(rec.count(), 5u);  // out_of_memory
  EXPECT_EQ(under.accessible_at_unreserve(), 0u);
}

TEST(PoisonKeepingOs, PagesAHeapGrewByButDidNotAllocateArePoisoned) {
  EXPECT_DEATH(
      {
        PoisonKeepingOs os;
        Options o = poisoning();
        o.os = &os;
        Heap heap(o);
        auto* p = static_cast<volatile char*>(heap.allocate(page_size));
        (void)p[page_size];  // the next page of the run grow() committed: free
      },
      "use-after-poison");
}
// Without ASan there is nothing to observe: the poisoning tests exist in the asan-ubsan preset.
#endif

}  // namespace
}  // namespace spanheap
