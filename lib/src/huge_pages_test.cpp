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

// Allocates objects of `size` until the heap has passed `mapped_bytes`; every allocation must
// succeed.
std::vector<void*> fill_past(RecordedHeap& h, std::size_t size, std::size_t mapped_bytes) {
  std::vector<void*> live;
  while (h.heap.stats().mapped_bytes <= mapped_bytes) {
    live.push_back(h.heap.allocate(size));
    EXPECT_NE(live.back(), nullptr) << "at " << h.heap.stats().mapped_bytes << " bytes mapped";
    if (live.back() == nullptr) break;
  }
  return live;
}

// The heap's first arena of huge pages starts on small pages: grown by commit_bytes and not
// advised while its small objects fit in its first huge page, advised whole (once) by the growth
// that passes it, and grown by whole huge pages from then on.
TEST(HugePages, TheFirstArenaStartsOnSmallPagesAndIsAdvisedWhenItsFirstHugePageIsFull) {
  RecordedHeap h(8 * mib, true);
  void* first = h.heap.allocate(64);
  ASSERT_NE(first, nullptr);
  // Reserved aligned to a huge page (the address alone could be aligned by chance); the arena is
  // the heap's first reservation.
  EXPECT_EQ(h.os.reserve_aligns().at(0), huge);
  EXPECT_TRUE(h.os.huge_page_advice().empty()) << "advised at its first allocation";
  EXPECT_EQ(h.heap.stats().mapped_bytes, std::size_t{512} << 10)
      << "the first growth was rounded to a huge page";
  std::vector<void*> live;
  std::size_t mapped = h.heap.stats().mapped_bytes;
  std::size_t grew_small = 0, grew_huge = 0;
  for (int i = 0; i < 640; i++) {  // 5 MiB
    live.push_back(h.heap.allocate(small_object));
    ASSERT_NE(live.back(), nullptr);
    const std::size_t now = h.heap.stats().mapped_bytes;
    const auto advice = h.os.huge_page_advice();
    if (now <= huge) {
      ASSERT_TRUE(advice.empty()) << "advised with " << now << " bytes mapped";
      if (now != mapped) grew_small++;
    } else {
      ASSERT_EQ(advice.size(), 1u);
      EXPECT_EQ(advice[0].base % huge, 0u) << "the arena does not start on a huge page";
      EXPECT_EQ(advice[0].size, 8 * mib) << "not the whole arena";
      ASSERT_TRUE(inside(advice[0], live.back())) << i;
      ASSERT_TRUE(inside(advice[0], first));
      ASSERT_EQ(now % huge, 0u) << "a growth past the first huge page ended inside one: " << now;
      if (now != mapped) grew_huge++;
    }
    mapped = now;
  }
  EXPECT_EQ(grew_small, 3u) << "512 KiB to 2 MiB by commit_bytes";
  EXPECT_GE(grew_huge, 2u);
  live.push_back(first);
  h.free_and_check(live);
}

// Once the heap has an arena of huge pages, the next one is advised when it is reserved and
// grown by whole huge pages from its first growth.
TEST(HugePages, ALaterArenaIsAdvisedAtOnceAndGrownByWholeHugePages) {
  RecordedHeap h(4 * mib, true);
  std::vector<void*> live = fill_past(h, small_object, 4 * mib);  // the first arena is full
  ASSERT_EQ(h.os.huge_page_advice().size(), 2u);
  const auto advice = h.os.huge_page_advice();
  EXPECT_EQ(advice[1].size, 4 * mib);
  EXPECT_EQ(advice[1].base % huge, 0u);
  EXPECT_TRUE(inside(advice[1], live.back()));
  EXPECT_EQ(h.heap.stats().mapped_bytes, 4 * mib + huge)
      << "the second arena's first growth is not one whole huge page";
  h.free_and_check(live);
}

// A large object's pages come from an arena of small pages: touching a huge page faults all of
// it in, and a large object is often touched in part only (a buffer, a vector's reserve).
TEST(HugePages, LargeObjectsTakeAnArenaOfSmallPages) {
  RecordedHeap h(8 * mib, true);
  void* small = h.heap.allocate(64);
  void* large = h.heap.allocate(96 << 10);
  ASSERT_TRUE(small != nullptr && large != nullptr);
  // Past the first huge page, so that the small objects' arena is advised.
  std::vector<void*> live = fill_past(h, small_object, 2 * mib + (std::size_t{512} << 10));
  const auto advice = h.os.huge_page_advice();
  ASSERT_EQ(advice.size(), 1u) << "the large object's arena was advised";
  EXPECT_TRUE(inside(advice[0], small));
  for (void* p : live) EXPECT_TRUE(inside(advice[0], p));
  EXPECT_FALSE(inside(advice[0], large));
  const auto aligns = h.os.reserve_aligns();
  EXPECT_NE(std::find(aligns.begin(), aligns.end(), mib), aligns.end())
      << "no arena reserved at the granule's alignment";
  EXPECT_TRUE(h.heap.verify().ok());  // every free run on the lists of its arena's kind
  h.heap.free(large);
  // Freed, its run goes back to the lists of its own kind: the next small span does not take it.
  void* small3 = h.heap.allocate(small_object);
  EXPECT_TRUE(inside(advice[0], small3));
  live.push_back(small);
  live.push_back(small3);
  h.free_and_check(live);
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

// Under a memory limit a whole huge page may not fit: the growth that passes the first huge page
// then commits what the request needs, as without huge pages, and the allocation succeeds.
TEST(HugePages, AtTheMemoryLimitGrowthFallsBackToWhatTheRequestNeeds) {
  RecordedHeap h(8 * mib, true, /*memory_limit=*/3 * mib);
  const std::vector<void*> live = fill_past(h, small_object, huge);
  ASSERT_EQ(h.rec.count(), 0u) << h.rec.take().at(0).message;
  const std::size_t mapped = h.heap.stats().mapped_bytes;
  EXPECT_GT(mapped, huge);
  EXPECT_LT(mapped, 3 * mib) << "the growth was rounded to a huge page past the limit";
  EXPECT_NE(mapped % huge, 0u);
  h.free_and_check(live);
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
