// The free fast path's home arena (home_arena.hpp, INV-H1): the arena it looks in first, the
// registry's verdicts around it, and the copies of its base and page table, published once.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "heap_state.hpp"
#include "home_arena.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

using test::names;

// The free fast path looks in one arena of the heap by address (HeapState::home) before it
// asks the registry. With 1 MiB arenas and 4 MiB of objects, frees into that arena and into the
// others are all valid, and pointers just outside it — foreign memory mapped at its bounds,
// another heap's object — get the registry's verdicts.
TEST(HomeArena, FreesInAndAroundTheFastPathsArenaGetTheRegistrysVerdicts) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  Heap other(test::deterministic(1, rec));
  std::vector<void*> v;
  for (int i = 0; i < 4096; i++) v.push_back(heap.allocate(1024));
  const detail::Arena* home = heap.state().home->arena.load();
  ASSERT_NE(home, &detail::no_arena);
  const std::uintptr_t lo = home->base, hi = home->base + (home->npages << detail::page_shift);
  std::size_t inside = 0;
  for (void* p : v) inside += reinterpret_cast<std::uintptr_t>(p) - lo < hi - lo;
  EXPECT_GT(inside, 0u);
  EXPECT_LT(inside, v.size());
  for (void* p : v) heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_EQ(heap.stats().frees, v.size());
  // Foreign pages right after the arena's last byte, else right before its first.
  const long page = sysconf(_SC_PAGESIZE);
  void* foreign = MAP_FAILED;
  for (std::uintptr_t at : {hi, lo - 2 * static_cast<std::uintptr_t>(page)}) {
    foreign =
        mmap(reinterpret_cast<void*>(at), 2 * static_cast<std::size_t>(page),
             PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (foreign != MAP_FAILED && reinterpret_cast<std::uintptr_t>(foreign) == at) break;
    if (foreign != MAP_FAILED) munmap(foreign, 2 * static_cast<std::size_t>(page));
    foreign = MAP_FAILED;
  }
  ASSERT_NE(foreign, MAP_FAILED) << "no free pages at either bound of the arena";
  heap.free(foreign);
  EXPECT_EQ(rec.count(ErrorKind::foreign_free), 1u);
  munmap(foreign, 2 * static_cast<std::size_t>(page));
  void* theirs = other.allocate(64);
  heap.free(theirs);
  EXPECT_EQ(rec.count(ErrorKind::misuse), 1u);
  other.free(theirs);
  EXPECT_EQ(rec.count(), 2u);
  EXPECT_VERIFIED(heap);
}

// INV-H1: the free fast path reads the home arena's base and page table from copies beside the
// arena (HomeArena, in the Heap object), so whenever a thread can see the arena it must see its
// copies. At the moment the first allocation makes the arena visible (home_arena_published) the
// fast path's view is that arena's; before, it names no arena (and a free goes to the registry);
// after, frees take the fast path's table and the heap verifies.
TEST(HomeArena, TheHomeArenasCopiesAreVisibleWithIt) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  const detail::HomeArenaView before = detail::home_arena_view(*heap.state().home);
  EXPECT_EQ(before.arena, &detail::no_arena);
  EXPECT_TRUE(detail::home_arena_view_consistent(before));
  int published = 0;
  testing::set_protocol_hook(heap,
                             [&](testing::ProtocolPoint) {
                               published++;
                               const detail::HomeArenaView v =
                                   detail::home_arena_view(*heap.state().home);
                               EXPECT_NE(v.arena, &detail::no_arena);
                               EXPECT_TRUE(detail::home_arena_view_consistent(v))
                                   << "the home arena is visible before its copies: base " << v.base
                                   << " (arena's " << v.arena->base << ")";
                             },
                             {testing::ProtocolPoint::home_arena_published});
  std::vector<void*> v;
  for (int i = 0; i < 64; i++) v.push_back(heap.allocate(48));
  testing::set_protocol_hook(heap, {});
  EXPECT_EQ(published, 1) << "the home arena is published once, by the first allocation";
  const detail::HomeArenaView after = detail::home_arena_view(*heap.state().home);
  ASSERT_TRUE(detail::home_arena_view_consistent(after));
  for (void* p : v) {
    const std::size_t page =
        (reinterpret_cast<std::uintptr_t>(p) - after.base) >> detail::page_shift;
    ASSERT_LT(page, after.arena->table_pages.load());
    EXPECT_NE(after.spans[page].load(), nullptr);
  }
  for (void* p : v) heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_EQ(heap.stats().frees, v.size());
  EXPECT_VERIFIED(heap);
}

// INV-H1 with two first allocations: one claims the publication of the home arena. With huge
// pages a small object's span and a large object's come from different arenas, so a second
// thread's first allocation (large) run in full while the first (small) has written its copies
// and not yet named its arena (home_arena_copied) would, if it published too, leave the first's
// arena named with the second's copies. The first must stay the home, with its own copies.
TEST(HomeArena, TwoFirstAllocationsOnDifferentArenasPublishOneHome) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.arena_bytes = std::size_t{8} << 20;
  o.huge_pages = true;
  Heap heap(o);
  bool started = false;
  int copied = 0;
  void* large = nullptr;
  testing::set_protocol_hook(
      heap,
      [&](testing::ProtocolPoint) {
        copied++;
        if (started) return;
        started = true;
        std::thread([&] { large = heap.allocate(std::size_t{64} << 10); }).join();
      },
      {testing::ProtocolPoint::home_arena_copied});
  void* small = heap.allocate(48);
  testing::set_protocol_hook(heap, {});
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  EXPECT_EQ(copied, 1) << "a second first allocation wrote the home arena's copies too";
  const detail::HomeArenaView home = detail::home_arena_view(*heap.state().home);
  EXPECT_TRUE(detail::home_arena_view_consistent(home))
      << "the home arena named with another arena's copies: base " << home.base << " (arena's "
      << home.arena->base << ")";
  const auto in_home = [&](void* p) {
    return reinterpret_cast<std::uintptr_t>(p) - home.arena->base <
           (home.arena->npages << detail::page_shift);
  };
  EXPECT_TRUE(in_home(small));
  ASSERT_FALSE(in_home(large)) << "the test needs the large object in another arena";
  heap.free(small);
  heap.free(large);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

// INV-H2: a bound call tests the thread's key against the Heap's copy of the bound key, and its
// slow exits reach the heap through the P (ProcState::heap). verify() checks the copy and every
// P's heap, and names each corrupted one.
TEST(HomeArena, VerifyChecksTheKeyCopyAndEveryPsHeap) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(2, rec));
  Heap other(test::deterministic(2, rec));
  detail::HeapState& st = heap.state();
  ASSERT_NE(st.bound_key_copy, nullptr);
  EXPECT_EQ(*st.bound_key_copy, st.bound_key);
  for (unsigned i = 0; i < st.nslots; i++) EXPECT_EQ(st.procs[i].heap.load(), &st) << "P " << i;
  EXPECT_VERIFIED(heap);
  auto& copy = const_cast<std::uint64_t&>(*st.bound_key_copy);
  copy ^= 4;  // another heap's uid
  EXPECT_TRUE(names(heap.verify(), "INV-H2"));
  copy ^= 4;
  st.procs[1].heap.store(&other.state());
  EXPECT_TRUE(names(heap.verify(), "INV-H2"));
  st.procs[1].heap.store(&st);
  EXPECT_VERIFIED(heap);
}

// INV-H2 at work: a thread bound in two heaps, calling each in runs, takes each one's bound fast
// path and its slow exits (the next word, refills, the general free), which find the heap through
// the P: each heap's double free is reported to that heap's handler, not the other's.
TEST(HomeArena, BoundCallsReachTheirOwnHeapThroughTheirP) {
  testing::RecordingHandler rec_a, rec_b;
  Options oa = test::deterministic(2, rec_a), ob = test::deterministic(2, rec_b);
  oa.binding = ob.binding = ProcBinding::automatic;
  Heap a(oa), b(ob);
  if (testing::binding(a) == ProcBinding::off) GTEST_SKIP() << "no membarrier: binding is off";
  std::vector<void*> in_a, in_b;
  for (int i = 0; i < 3000; i++) in_a.push_back(a.allocate(48 + i % 7 * 16));
  EXPECT_TRUE(testing::proc_bound(a, 0) || testing::proc_bound(a, 1));
  for (int i = 0; i < 3000; i++) in_b.push_back(b.allocate(48 + i % 7 * 16));
  for (int i = 0; i < 2; i++) a.allocate(16);  // bound in `a` again, then a double free
  a.free(in_a.back());
  a.free(in_a.back());
  in_a.pop_back();
  EXPECT_EQ(rec_a.count(ErrorKind::double_free), 1u);
  EXPECT_EQ(rec_b.count(), 0u);
  for (int i = 0; i < 2; i++) b.allocate(16);
  b.free(in_b.back());
  b.free(in_b.back());
  in_b.pop_back();
  EXPECT_EQ(rec_b.count(ErrorKind::double_free), 1u);
  EXPECT_EQ(rec_a.count(), 1u);
  for (void* p : in_a) a.free(p);
  for (void* p : in_b) b.free(p);
  EXPECT_EQ(rec_a.count(), 1u);
  EXPECT_EQ(rec_b.count(), 1u);
  EXPECT_VERIFIED(a);
  EXPECT_VERIFIED(b);
}

}  // namespace
}  // namespace spanheap
