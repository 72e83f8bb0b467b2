// Tests for Options::huge_pages: which arenas are advised, their alignment, and growth by whole
// huge pages (arena ends and the memory limit included), through a FakeOsMemory that records the
// advice. Whether the kernel then builds huge pages is its business (docs/design.md "Huge pages").
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "test_util.hpp"

namespace spanheap {
namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t huge = 2 * mib;

// A one-P heap on a FakeOsMemory that records what it asks of the OS, with arenas of
// `arena_bytes`, growth by 512 KiB where huge pages do not round it, and huge pages on or off.
struct RecordedHeap {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap;

  RecordedHeap(std::size_t arena_bytes, bool huge_pages, std::size_t memory_limit = 0,
               unsigned release_after_cycles = 2)
      : heap(options(arena_bytes, huge_pages, memory_limit, release_after_cycles)) {}

  Options options(std::size_t arena_bytes, bool huge_pages, std::size_t memory_limit,
                  unsigned release_after_cycles) {
    Options o = test::deterministic(1, rec);
    o.arena_bytes = arena_bytes;
    o.commit_bytes = 512 << 10;
    o.huge_pages = huge_pages;
    o.memory_limit = memory_limit;
    o.release_after_cycles = release_after_cycles;
    o.os = &os;
    return o;
  }

  // Frees `objects`; the heap must then verify and have reported nothing.
  void free_and_check(const std::vector<void*>& objects) {
    for (void* p : objects) heap.free(p);
    EXPECT_TRUE(heap.verify().ok());
    EXPECT_EQ(rec.count(), 0u);
  }
};

bool inside(const testing::FakeOsMemory::Range& r, const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return a >= r.base && a < r.base + r.size;
}

// Objects of 8 KiB: a small class (spans of 8 of them), so they take the arenas of huge pages.
constexpr std::size_t small_object = 8192;

TEST(HugePages, AnArenaOfSmallObjectsIsAlignedAdvisedAndGrownByWholeHugePages) {
  RecordedHeap h(8 * mib, true);
  void* first = h.heap.allocate(64);
  ASSERT_NE(first, nullptr);
  const auto advice = h.os.huge_page_advice();
  ASSERT_EQ(advice.size(), 1u);
  // Reserved aligned to a huge page (the address alone could be aligned by chance); the arena is
  // the heap's first reservation.
  EXPECT_EQ(h.os.reserve_aligns().at(0), huge);
  EXPECT_EQ(advice[0].base % huge, 0u) << "the arena does not start on a huge page";
  EXPECT_EQ(advice[0].size, 8 * mib);
  EXPECT_TRUE(inside(advice[0], first));
  // The first growth asked for commit_bytes (512 KiB) and got the whole huge page.
  EXPECT_EQ(h.heap.stats().mapped_bytes, huge);
  std::vector<void*> live;
  std::size_t grew = 0;
  std::size_t mapped = h.heap.stats().mapped_bytes;
  for (int i = 0; i < 640; i++) {  // 5 MiB
    live.push_back(h.heap.allocate(small_object));
    ASSERT_NE(live.back(), nullptr);
    ASSERT_TRUE(inside(advice[0], live.back())) << i;
    const std::size_t now = h.heap.stats().mapped_bytes;
    ASSERT_EQ(now % huge, 0u) << "a growth ended inside a huge page: " << now;
    if (now != mapped) grew++;
    mapped = now;
  }
  EXPECT_GE(grew, 2u);
  EXPECT_EQ(h.os.huge_page_advice().size(), 1u);
  live.push_back(first);
  h.free_and_check(live);
}

// A large object's pages come from an arena of small pages: touching a huge page faults all of
// it in, and a large object is often touched in part only (a buffer, a vector's reserve).
TEST(HugePages, LargeObjectsTakeAnArenaOfSmallPages) {
  RecordedHeap h(8 * mib, true);
  void* small = h.heap.allocate(64);
  void* large = h.heap.allocate(96 << 10);
  void* small2 = h.heap.allocate(small_object);
  ASSERT_TRUE(small != nullptr && large != nullptr && small2 != nullptr);
  const auto advice = h.os.huge_page_advice();
  ASSERT_EQ(advice.size(), 1u) << "the large object's arena was advised";
  EXPECT_TRUE(inside(advice[0], small));
  EXPECT_TRUE(inside(advice[0], small2));
  EXPECT_FALSE(inside(advice[0], large));
  const auto aligns = h.os.reserve_aligns();
  EXPECT_NE(std::find(aligns.begin(), aligns.end(), mib), aligns.end())
      << "no arena reserved at the granule's alignment";
  // A huge page for the small objects, commit_bytes for the large one.
  EXPECT_EQ(h.heap.stats().mapped_bytes, huge + (std::size_t{512} << 10));
  EXPECT_TRUE(h.heap.verify().ok());  // every free run on the lists of its arena's kind
  h.heap.free(large);
  // Freed, its run goes back to the lists of its own kind: the next small span does not take it.
  void* small3 = h.heap.allocate(small_object);
  EXPECT_TRUE(inside(advice[0], small3));
  h.free_and_check({small, small2, small3});
}

TEST(HugePages, OffTheArenaIsNotAdvisedAndGrowsByCommitBytes) {
  RecordedHeap h(8 * mib, false);
  void* p = h.heap.allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(h.os.huge_page_advice().empty());
  EXPECT_EQ(h.os.reserve_aligns().at(0), mib);
  EXPECT_EQ(h.heap.stats().mapped_bytes, std::size_t{512} << 10);
  h.free_and_check({p});
}

TEST(HugePages, AnArenaSmallerThanAHugePageIsNotAdvised) {
  RecordedHeap h(mib, true);
  void* p = h.heap.allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(h.os.huge_page_advice().empty());
  EXPECT_EQ(h.heap.stats().mapped_bytes, std::size_t{512} << 10);
  h.free_and_check({p});
}

// An arena of 3 MiB holds one whole huge page: only that is advised, and the growth past it
// commits the arena's last MiB, no more.
TEST(HugePages, TheAdviceCoversWholeHugePagesAndGrowthStopsAtTheArenaEnd) {
  RecordedHeap h(3 * mib, true);
  std::vector<void*> live;
  for (int i = 0; i < 288; i++) live.push_back(h.heap.allocate(small_object));  // 2.25 MiB
  for (void* p : live) ASSERT_NE(p, nullptr);
  const auto advice = h.os.huge_page_advice();
  ASSERT_GE(advice.size(), 1u);
  EXPECT_EQ(advice[0].size, huge);
  // The first arena is committed whole (3 MiB): 2 MiB, then the 1 MiB left of it.
  const testing::FakeOsMemory::Range arena{advice[0].base, 3 * mib};
  std::size_t in_first = 0;
  for (void* p : live) in_first += inside(arena, p) ? 1 : 0;
  EXPECT_EQ(in_first, live.size()) << "a growth left the first arena before it was full";
  EXPECT_EQ(h.heap.stats().mapped_bytes, 3 * mib);
  h.free_and_check(live);
}

// Under a memory limit a whole huge page may not fit: growth then commits what the request
// needs, as without huge pages, and the allocation succeeds.
TEST(HugePages, AtTheMemoryLimitGrowthFallsBackToWhatTheRequestNeeds) {
  RecordedHeap h(8 * mib, true, /*memory_limit=*/mib);
  void* p = h.heap.allocate(64);
  ASSERT_NE(p, nullptr) << (h.rec.count() != 0 ? h.rec.take().at(0).message : "");
  const std::size_t mapped = h.heap.stats().mapped_bytes;
  EXPECT_GT(mapped, 0u);
  EXPECT_LT(mapped, mib);
  h.free_and_check({p});
}

// The scavenger leaves a free run that holds no whole huge page (releasing it would split huge
// pages in use, and khugepaged would fault it back in), and releases one that holds one.
TEST(HugePages, OnlyFreeRunsHoldingAWholeHugePageAreReleased) {
  for (bool huge_pages : {true, false}) {
    SCOPED_TRACE(huge_pages ? "huge pages" : "small pages");
    RecordedHeap h(16 * mib, huge_pages, 0, /*release_after_cycles=*/1);
    // 4 MiB of small objects, the first and the last kept: the runs freed between them span
    // both huge pages but hold neither whole.
    std::vector<void*> objects;
    for (int i = 0; i < 512; i++) objects.push_back(h.heap.allocate(small_object));
    for (void* p : objects) ASSERT_NE(p, nullptr);
    std::uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (void* p : objects) {
      lo = std::min(lo, reinterpret_cast<std::uintptr_t>(p));
      hi = std::max(hi, reinterpret_cast<std::uintptr_t>(p));
    }
    ASSERT_EQ(hi - lo, 4 * mib - small_object) << "the objects are not one run of 4 MiB";
    for (std::size_t i = 1; i + 1 < objects.size(); i++) h.heap.free(objects[i]);
    for (int i = 0; i < 3; i++) {
      h.heap.collect();
      while (h.heap.sweep_one()) {
      }
    }
    ASSERT_LT(h.heap.stats().span_bytes, mib) << "the emptied spans did not go back to the pages";
    if (huge_pages) {
      EXPECT_EQ(h.os.released_bytes(), 0u);
      EXPECT_EQ(h.heap.stats().released_bytes, 0u);
    } else {
      EXPECT_GE(h.os.released_bytes(), 2 * mib);
    }
    h.heap.free(objects.front());
    h.heap.free(objects.back());
    for (int i = 0; i < 3; i++) {
      h.heap.collect();
      while (h.heap.sweep_one()) {
      }
    }
    // Everything is free: one run of two whole huge pages, released.
    EXPECT_GE(h.heap.stats().released_bytes, 4 * mib);
    h.free_and_check({});
  }
}

TEST(HugePages, OnByDefaultAndOffWithTheEnvironment) {
  EXPECT_TRUE(Options{}.huge_pages);
  setenv("SPANHEAP_HUGE_PAGES", "0", 1);
  EXPECT_FALSE(Options::from_env().huge_pages);
  setenv("SPANHEAP_HUGE_PAGES", "1", 1);
  EXPECT_TRUE(Options::from_env().huge_pages);
  unsetenv("SPANHEAP_HUGE_PAGES");
}

}  // namespace
}  // namespace spanheap
