// Tests for page_heap and page_map: page runs, coalescing, release to the OS, growth failures,
// pointer classification, and heap destruction returning every byte.
#include <gtest/gtest.h>

#include <algorithm>

#include "test_util.hpp"

namespace spanheap {
namespace {

using testing::SpanLocation;

TEST(PageHeap, FreedRunsCoalesce) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  std::vector<void*> big;
  for (int i = 0; i < 8; i++) big.push_back(heap.allocate((i % 3 + 1) * 40000));
  for (void* p : big) heap.free(p);
  heap.collect();
  while (heap.sweep_one()) {
  }
  const auto snap = testing::snapshot(heap);
  // Everything is free again: one run per arena, no two adjacent free runs.
  std::size_t free_runs = 0;
  for (const auto& s : snap.spans) {
    EXPECT_FALSE(s.in_use);
    EXPECT_EQ(s.location, SpanLocation::page_heap_free);
    free_runs++;
  }
  EXPECT_GE(free_runs, 1u);
  EXPECT_EQ(snap.stats.span_bytes, 0u);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

// A span struct that the page heap recycles for a use with fewer slots carries none of its
// earlier use's bits past its slots (INV-A2 covers the reclaimed bits too).
TEST(PageHeap, ARecycledStructKeepsNoBitsPastItsSlots) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  // One span of 1,024 8-byte objects: all 16 words of each bitmap. The cycle's sweep reclaims
  // them all (setting reclaimed bits in every word) and returns the span's page and struct.
  std::vector<void*> small;
  for (int i = 0; i < 1024; i++) small.push_back(heap.allocate(8));
  for (void* p : small) heap.free(p);
  heap.collect();
  while (heap.sweep_one()) {
  }
  EXPECT_EQ(heap.stats().span_bytes, 0u);
  // Large objects (one slot each) take structs from the recycled pool.
  std::vector<void*> big;
  for (int i = 0; i < 4; i++) big.push_back(heap.allocate(40000));
  EXPECT_TRUE(heap.verify().ok());
  for (void* p : big) heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
}

// The page history keeps 2 bits a page, 32 pages a word, and answers for every page on its own:
// each page of a freed large object is double_free, and the never-used pages past the last one,
// in the same word, stay invalid_free. The runs start and end at many offsets inside a word.
TEST(PageHeap, EveryFreedPageRemembersItsUseAndNoOtherPageDoes) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.arena_bytes = std::size_t{8} << 20;
  Heap heap(o);
  const std::size_t lengths[] = {5, 27, 6, 33, 64, 7, 70, 9};  // 221 pages in all
  std::vector<std::pair<char*, std::size_t>> objects;
  std::uintptr_t end = 0;
  for (std::size_t n : lengths) {
    auto* p = static_cast<char*>(heap.allocate(n * page_size));
    ASSERT_NE(p, nullptr);
    objects.emplace_back(p, n);
    end = std::max(end, reinterpret_cast<std::uintptr_t>(p) + n * page_size);
  }
  // Arenas are 1 MiB aligned, so a history word covers 32 pages of an aligned 256 KiB: the first
  // never-used page must share its word with the last freed one for the check to mean anything.
  ASSERT_NE(end / page_size % 32, 0u) << "the objects no longer end inside a history word";
  for (auto [p, n] : objects) heap.free(p);
  ASSERT_EQ(rec.count(), 0u);
  std::size_t probes = 0;
  for (auto [p, n] : objects) {
    for (std::size_t k = 0; k < n; k++, probes++) {
      heap.free(p + k * page_size);
      ASSERT_EQ(rec.count(ErrorKind::double_free), probes + 1)
          << "page " << k << " of a freed " << n << "-page object";
    }
  }
  for (std::size_t k = 0; k < 3; k++) {
    heap.free(reinterpret_cast<char*>(end) + k * page_size);
    EXPECT_EQ(rec.count(ErrorKind::invalid_free), k + 1) << "never-used page " << k;
  }
  EXPECT_EQ(rec.count(), probes + 3);
  EXPECT_TRUE(heap.verify().ok());
}

TEST(PageHeap, IdleRunsAreReleasedToTheOs) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = test::deterministic(1, rec);
  o.os = &os;
  o.release_after_cycles = 2;
  Heap heap(o);
  void* p = heap.allocate(200000);
  heap.free(p);
  heap.collect();
  while (heap.sweep_one()) {
  }
  EXPECT_EQ(heap.stats().released_bytes, 0u);
  heap.collect();
  heap.collect();
  const Stats s = heap.stats();
  EXPECT_GT(s.released_bytes, 200000u);
  EXPECT_GE(os.released_bytes(), s.released_bytes);
  // Released pages are reused (and counted back) by the next allocation that needs them.
  void* q = heap.allocate(200000);
  ASSERT_NE(q, nullptr);
  EXPECT_LT(heap.stats().released_bytes, s.released_bytes);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

// A paced heap keeps idle free runs up to its retained goal (the heap goal plus 10 %): memory freed
// and allocated again between cycles is not released and faulted back in at every allocation.
void collect_and_sweep(Heap& heap, int cycles) {
  for (int i = 0; i < cycles; i++) {
    heap.collect();
    while (heap.sweep_one()) {
    }
  }
}

Options paced(testing::RecordingHandler& rec, testing::FakeOsMemory& os) {
  Options o = test::deterministic(1, rec);
  o.os = &os;
  o.gc_percent = 100;
  o.release_after_cycles = 2;
  return o;
}

TEST(PageHeap, APacedHeapKeepsIdleRunsWithinItsRetainedGoal) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(paced(rec, os));
  heap.free(heap.allocate(200000));
  collect_and_sweep(heap, 4);
  EXPECT_EQ(heap.stats().released_bytes, 0u) << "idle pages within the goal were released";
  EXPECT_EQ(os.released_bytes(), 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(PageHeap, APacedHeapReleasesIdleRunsPastItsRetainedGoal) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(paced(rec, os));
  std::vector<void*> big;
  for (int i = 0; i < 40; i++) big.push_back(heap.allocate(256 << 10));  // 10 MiB
  for (void* p : big) heap.free(p);
  collect_and_sweep(heap, 4);
  // Nothing survives: the goal is the 4 MiB trigger floor plus 10 %; the rest goes back.
  const Stats s = heap.stats();
  EXPECT_GE(s.released_bytes, std::size_t{5} << 20);
  EXPECT_LE(s.mapped_bytes, std::size_t{5} << 20) << "kept more than the retained goal";
  EXPECT_GT(s.mapped_bytes, 0u) << "released the memory within the goal too";
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(PageHeap, GrowthFailuresAreOutOfMemoryAndLeaveTheHeapIntact) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = test::deterministic(1, rec);
  o.os = &os;
  Heap heap(o);
  std::vector<void*> live;
  for (int i = 0; i < 50; i++) live.push_back(heap.allocate(512));
  os.fail_commits(3);
  int failed = 0;
  for (int i = 0; i < 3; i++)
    if (heap.allocate(3 << 20) == nullptr) failed++;
  EXPECT_GE(failed, 1);
  EXPECT_EQ(rec.count(ErrorKind::out_of_memory), static_cast<std::size_t>(failed));
  rec.clear();
  for (void* p : live) heap.free(p);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

TEST(PageHeap, DestructionReturnsEveryByte) {
  testing::FakeOsMemory os;
  {
    testing::RecordingHandler rec;
    Options o = test::deterministic(4, rec);
    o.os = &os;
    o.sweepers = 2;
    Heap heap(o);
    for (int i = 0; i < 5000; i++) heap.proc(i % 4).allocate(static_cast<std::size_t>(i % 700) + 1);
    for (int i = 0; i < 5; i++) heap.allocate(std::size_t{3} << 20);
    heap.collect();
    EXPECT_GT(os.reserved_bytes(), 0u);
  }
  EXPECT_EQ(os.reserved_bytes(), 0u);
  EXPECT_EQ(os.committed_bytes(), 0u);
}

TEST(PageMap, FindObjectClassifiesEveryKind) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  Heap other(test::deterministic(1, rec));
  auto* a = static_cast<char*>(heap.allocate(64));
  int local = 0;
  EXPECT_EQ(heap.find_object(&local).kind, PointerKind::foreign);
  EXPECT_EQ(heap.find_object(other.allocate(8)).kind, PointerKind::other_heap);
  const PointerInfo start = heap.find_object(a);
  EXPECT_EQ(start.kind, PointerKind::object_start);
  EXPECT_EQ(start.base, a);
  EXPECT_EQ(start.size, 64u);
  EXPECT_FALSE(start.pending_free);
  EXPECT_EQ(heap.find_object(a + 3).kind, PointerKind::interior);
  EXPECT_EQ(heap.find_object(a + 64 * 3).kind, PointerKind::free_slot);
  EXPECT_EQ(heap.find_object(a + 700 * 1024).kind, PointerKind::free_pages);
  heap.free(a);
  EXPECT_TRUE(heap.find_object(a).pending_free);
  EXPECT_TRUE(heap.owns(a));
  EXPECT_FALSE(heap.owns(&local));
  // A span whose objects do not fill it has a tail.
  for (const auto& sc : testing::size_classes()) {
    if (sc.tail_waste == 0) continue;
    auto* o = static_cast<char*>(heap.allocate(sc.size, 8));
    ASSERT_EQ(testing::size_to_class(sc.size, 8), sc.span_class);
    const auto snap = testing::snapshot(heap);
    const auto* s = test::span_containing(snap, o);
    ASSERT_NE(s, nullptr);
    auto* tail = reinterpret_cast<char*>(s->base + s->npages * page_size - 1);
    EXPECT_EQ(heap.find_object(tail).kind, PointerKind::span_tail) << "class " << sc.span_class;
    heap.free(tail);
    EXPECT_EQ(rec.count(ErrorKind::invalid_free), 1u);
    rec.clear();
    break;
  }
  EXPECT_TRUE(heap.verify().ok());
}

// Growth commits Options::commit_bytes at a time (rounded up to pages, at most an arena), or the
// request when it is bigger.
TEST(PageHeap, GrowthCommitsCommitBytesAtATime) {
  for (const std::size_t commit : {std::size_t{1}, std::size_t{64} << 10, std::size_t{100000},
                                   std::size_t{512} << 10, ~std::size_t{0}}) {
    testing::RecordingHandler rec;
    testing::FakeOsMemory os;
    Options o = test::deterministic(1, rec);
    o.os = &os;
    o.commit_bytes = commit;
    Heap heap(o);
    const std::size_t clamped = std::clamp(commit, page_size, o.arena_bytes);
    const std::size_t chunk = (clamped + page_size - 1) / page_size * page_size;
    void* small = heap.allocate(64);
    ASSERT_NE(small, nullptr);
    const std::size_t after_small = heap.stats().mapped_bytes;
    EXPECT_EQ(after_small, chunk) << "commit_bytes " << commit;
    EXPECT_EQ(os.commit_calls() >= 1, true);
    heap.free(small);
    EXPECT_TRUE(heap.verify().ok());
    // Outside [a page, an arena] the value is clamped with a misuse report; rounding is silent.
    EXPECT_EQ(rec.count(ErrorKind::misuse), commit != clamped ? 1u : 0u) << "commit " << commit;
    EXPECT_EQ(rec.count(), rec.count(ErrorKind::misuse));
  }
}

}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {

Options limited(testing::RecordingHandler& rec, testing::FakeOsMemory& os) {
  Options o = test::deterministic(1, rec);
  o.os = &os;
  o.arena_bytes = std::size_t{64} << 20;
  return o;
}

// Everything the heap commits is either mapped (arena pages) or metadata, and both count.
void expect_accounted(Heap& heap, const testing::FakeOsMemory& os) {
  const Stats s = heap.stats();
  EXPECT_EQ(os.committed_bytes(), s.mapped_bytes + s.released_bytes + s.metadata_bytes);
  EXPECT_EQ(os.reserved_bytes(), s.reserved_bytes);
}

// The limit is checked before anything is reserved: a refused request leaves no reservation, no
// committed page table and no new current arena behind (it once cost ~290 MiB of RSS each).
TEST(PageHeap, ARequestRefusedByTheMemoryLimitCostsNothing) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = limited(rec, os);
  o.memory_limit = std::size_t{64} << 20;
  Heap heap(o);
  void* small = heap.allocate(64);
  ASSERT_NE(small, nullptr);
  const std::size_t reserved = os.reserved_bytes();
  const std::size_t committed = os.committed_bytes();
  for (int i = 0; i < 2; i++) {
    EXPECT_EQ(heap.allocate(std::size_t{256} << 30), nullptr);
    EXPECT_EQ(os.reserved_bytes(), reserved);
    EXPECT_EQ(os.committed_bytes(), committed);
  }
  EXPECT_EQ(rec.count(ErrorKind::out_of_memory), 2u);
  EXPECT_EQ(rec.count(), 2u);
  // The heap still grows in its current arena up to the limit, metadata included.
  void* medium = heap.allocate(std::size_t{32} << 20);
  EXPECT_NE(medium, nullptr);
  expect_accounted(heap, os);
  EXPECT_LE(os.committed_bytes(), o.memory_limit);
  heap.free(medium);
  heap.free(small);
  EXPECT_TRUE(heap.verify().ok());
}

// A growth that reserved an arena and then could not commit gives the arena back.
TEST(PageHeap, AFailedGrowthGivesBackTheArenaItReserved) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Heap heap(limited(rec, os));
  void* small = heap.allocate(64);
  ASSERT_NE(small, nullptr);
  const std::size_t reserved = os.reserved_bytes();
  const std::size_t committed = os.committed_bytes();
  os.cap_committed(committed + (std::size_t{1} << 20));       // tables fit, the pages do not
  EXPECT_EQ(heap.allocate(std::size_t{128} << 20), nullptr);  // needs an arena of its own
  EXPECT_EQ(rec.count(ErrorKind::out_of_memory), 1u);
  EXPECT_EQ(os.reserved_bytes(), reserved);
  EXPECT_EQ(os.committed_bytes(), committed);
  expect_accounted(heap, os);
  os.cap_committed(0);
  void* big = heap.allocate(std::size_t{128} << 20);
  EXPECT_NE(big, nullptr);
  heap.free(big);
  heap.free(small);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 1u);
}

// Page tables are committed as pages are: a 1 GiB arena whose first 512 KiB are committed costs
// a few pages of tables, not the 1.1 MiB a whole table takes.
TEST(PageHeap, PageTablesAreCommittedAsPagesAre) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = limited(rec, os);
  o.arena_bytes = std::size_t{1} << 30;
  Heap heap(o);
  ASSERT_NE(heap.allocate(64), nullptr);
  const Stats s = heap.stats();
  EXPECT_LE(s.metadata_bytes, (std::size_t{64} << 10) + 3 * page_size);  // span structs + tables
  expect_accounted(heap, os);
  // A bad free into the arena's uncommitted rest is judged without touching its tables.
  auto* far = reinterpret_cast<char*>(heap.find_object(heap.allocate(64)).base) + (512 << 20);
  heap.free(far);
  EXPECT_EQ(rec.count(ErrorKind::invalid_free), 1u);
  EXPECT_EQ(heap.find_object(far).kind, PointerKind::free_pages);
}

}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {

// page_alloc sweeps at most a budget of spans before it grows: it holds a P, and a stop-the-world
// waits for it (unbounded, one large allocation swept every unswept span of the heap first).
TEST(PageHeap, PageAllocSweepsABoundedNumberOfSpansBeforeGrowing) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  std::vector<void*> live;
  // Large objects, one span each: a P caches no large span, so all 400 stay on central's lists
  // (small spans would wait in the P's owned set and be swept by its flush instead).
  for (int i = 0; i < 400; i++) live.push_back(heap.allocate(max_small_size + 1));
  heap.collect();  // all 400 unswept, none with anything to free
  std::size_t unswept = 0;
  for (const testing::SpanInfo& s : testing::snapshot(heap).spans)
    unswept += s.in_use && s.sweepgen_delta == -2;
  ASSERT_GT(unswept, 100u);  // more than the budget: an unbounded sweep would show
  const std::uint64_t before = heap.stats().swept_on_demand;
  void* big = heap.allocate(std::size_t{8} << 20);  // fits no free run: sweep, then grow
  ASSERT_NE(big, nullptr);
  EXPECT_LE(heap.stats().swept_on_demand - before, 100u);
  heap.free(big);
  for (void* p : live) heap.free(p);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

// An OS that hands out an address the arena registry cannot index (beyond 48 bits).
class HighAddressOs final : public OsMemory {
 public:
  void* reserve(std::size_t size, std::size_t align) override {
    if (size < (std::size_t{1} << 20)) return system_memory().reserve(size, align);
    return reinterpret_cast<void*>(std::uintptr_t{1} << 48);  // never touched before the check
  }
  bool commit(void* p, std::size_t size) override { return system_memory().commit(p, size); }
  void release(void* p, std::size_t size) override { system_memory().release(p, size); }
  void unreserve(void* p, std::size_t size) override {
    if (reinterpret_cast<std::uintptr_t>(p) < (std::uintptr_t{1} << 48))
      system_memory().unreserve(p, size);
  }
};

TEST(PageHeapDeathTest, AnArenaBeyondTheRegistrysReachIsRefused) {
  EXPECT_DEATH(
      {
        HighAddressOs os;
        Options o;
        o.procs = 1;
        o.sweepers = 0;
        o.os = &os;
        Heap heap(o);
        heap.allocate(64);
      },
      "spanheap: corruption: arena \\[0x1000000000000, .*\\) lies beyond the 48-bit address "
      "space the registry covers");
}

}  // namespace
}  // namespace spanheap
