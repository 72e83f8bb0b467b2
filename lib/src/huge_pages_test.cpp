// Tests for Options::huge_pages: which arenas are advised, their alignment, and growth by whole
// huge pages (arena ends and the memory limit included), through a FakeOsMemory that records the
// advice. Whether the kernel then builds huge pages is its business (docs/design.md "Huge pages").
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "test_util.hpp"

namespace spanheap {
namespace {

constexpr std::size_t mib = std::size_t{1} << 20;
constexpr std::size_t huge = 2 * mib;

Options huge_options(testing::RecordingHandler& rec, testing::FakeOsMemory& os,
                     std::size_t arena_bytes, bool huge_pages) {
  Options o = test::deterministic(1, rec);
  o.arena_bytes = arena_bytes;
  o.commit_bytes = 512 << 10;
  o.huge_pages = huge_pages;
  o.os = &os;
  return o;
}

bool inside(const testing::FakeOsMemory::Range& r, const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return a >= r.base && a < r.base + r.size;
}

TEST(HugePages, AnArenaIsAlignedAdvisedAndGrownByWholeHugePages) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(huge_options(rec, os, 8 * mib, true));
  void* first = heap.allocate(64);
  ASSERT_NE(first, nullptr);
  const auto advice = os.huge_page_advice();
  ASSERT_EQ(advice.size(), 1u);
  // Reserved aligned to a huge page (the address alone could be aligned by chance); the arena is
  // the heap's first reservation.
  EXPECT_EQ(os.reserve_aligns().at(0), huge);
  EXPECT_EQ(advice[0].base % huge, 0u) << "the arena does not start on a huge page";
  EXPECT_EQ(advice[0].size, 8 * mib);
  EXPECT_TRUE(inside(advice[0], first));
  // The first growth asked for commit_bytes (512 KiB) and got the whole huge page.
  EXPECT_EQ(heap.stats().mapped_bytes, huge);
  // Large objects of 96 KiB take the page heap's runs: every growth ends on a huge page.
  std::vector<void*> live;
  std::size_t grew = 0;
  std::size_t mapped = heap.stats().mapped_bytes;
  for (int i = 0; i < 60; i++) {
    live.push_back(heap.allocate(96 << 10));
    ASSERT_NE(live.back(), nullptr);
    EXPECT_TRUE(inside(advice[0], live.back()));
    const std::size_t now = heap.stats().mapped_bytes;
    EXPECT_EQ(now % huge, 0u) << "a growth ended inside a huge page: " << now;
    if (now != mapped) grew++;
    mapped = now;
  }
  EXPECT_GE(grew, 2u);
  for (void* p : live) heap.free(p);
  heap.free(first);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

TEST(HugePages, OffTheArenaIsNotAdvisedAndGrowsByCommitBytes) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(huge_options(rec, os, 8 * mib, false));
  void* p = heap.allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(os.huge_page_advice().empty());
  EXPECT_EQ(os.reserve_aligns().at(0), mib);
  EXPECT_EQ(heap.stats().mapped_bytes, std::size_t{512} << 10);
  heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(HugePages, AnArenaSmallerThanAHugePageIsNotAdvised) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(huge_options(rec, os, mib, true));
  void* p = heap.allocate(64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(os.huge_page_advice().empty());
  EXPECT_EQ(heap.stats().mapped_bytes, std::size_t{512} << 10);
  heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
}

// An arena of 3 MiB holds one whole huge page: only that is advised, and the growth past it
// commits the arena's last MiB, no more.
TEST(HugePages, TheAdviceCoversWholeHugePagesAndGrowthStopsAtTheArenaEnd) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(huge_options(rec, os, 3 * mib, true));
  std::vector<void*> live;
  for (int i = 0; i < 24; i++) live.push_back(heap.allocate(96 << 10));  // 2.25 MiB
  for (void* p : live) ASSERT_NE(p, nullptr);
  const auto advice = os.huge_page_advice();
  ASSERT_GE(advice.size(), 1u);
  EXPECT_EQ(advice[0].size, huge);
  // The first arena is committed whole (3 MiB): 2 MiB, then the 1 MiB left of it.
  const testing::FakeOsMemory::Range arena{advice[0].base, 3 * mib};
  std::size_t in_first = 0;
  for (void* p : live) in_first += inside(arena, p) ? 1 : 0;
  EXPECT_EQ(in_first, live.size()) << "a growth left the first arena before it was full";
  EXPECT_EQ(heap.stats().mapped_bytes, 3 * mib);
  for (void* p : live) heap.free(p);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

// Under a memory limit a whole huge page may not fit: growth then commits what the request
// needs, as without huge pages, and the allocation succeeds.
TEST(HugePages, AtTheMemoryLimitGrowthFallsBackToWhatTheRequestNeeds) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = huge_options(rec, os, 8 * mib, true);
  o.memory_limit = mib;
  Heap heap(o);
  void* p = heap.allocate(64);
  ASSERT_NE(p, nullptr) << (rec.count() != 0 ? rec.take().at(0).message : "");
  const std::size_t mapped = heap.stats().mapped_bytes;
  EXPECT_GT(mapped, 0u);
  EXPECT_LT(mapped, mib);
  heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
}

// The scavenger leaves a free run that holds no whole huge page (releasing it would split huge
// pages in use, and khugepaged would fault it back in), and releases one that holds one.
TEST(HugePages, OnlyFreeRunsHoldingAWholeHugePageAreReleased) {
  for (bool huge_pages : {true, false}) {
    SCOPED_TRACE(huge_pages ? "huge pages" : "small pages");
    testing::RecordingHandler rec;
    testing::FakeOsMemory os;
    Options o = huge_options(rec, os, 16 * mib, huge_pages);
    o.release_after_cycles = 1;
    Heap heap(o);
    // Large objects, each its own run: a 512 KiB run freed between two 1 MiB ones, then all.
    void* a = heap.allocate(mib);
    void* b = heap.allocate(mib / 2);
    void* c = heap.allocate(mib);
    ASSERT_TRUE(a != nullptr && b != nullptr && c != nullptr);
    heap.free(b);
    for (int i = 0; i < 3; i++) heap.collect();
    if (huge_pages) {
      // Neither b's run nor the rest of the committed huge pages past c holds a whole one.
      EXPECT_EQ(os.released_bytes(), 0u);
      EXPECT_EQ(heap.stats().released_bytes, 0u);
    } else {
      EXPECT_GE(os.released_bytes(), mib / 2);
    }
    heap.free(a);
    heap.free(c);
    for (int i = 0; i < 3; i++) heap.collect();
    const Stats st = heap.stats();
    // Everything is free: one run of whole huge pages, released.
    EXPECT_GE(st.released_bytes, 2 * mib);
    EXPECT_EQ(st.released_bytes, os.released_bytes() - (huge_pages ? 0 : mib / 2));
    EXPECT_TRUE(heap.verify().ok());
    EXPECT_EQ(rec.count(), 0u);
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
