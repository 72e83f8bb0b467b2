// End-to-end tests of the public API: allocation across every class and alignment, contents,
// stats, pacing, options from the environment, and many threads allocating and freeing across
// threads while cycles run concurrently (the tsan preset runs this under ThreadSanitizer).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

#include "heap_state.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

TEST(Heap, EveryClassAndAlignment) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(2, rec));
  std::vector<std::pair<unsigned char*, std::size_t>> live;
  for (std::size_t align = 1; align <= page_size; align *= 2) {
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{24},
                             std::size_t{100}, std::size_t{1000}, std::size_t{5000},
                             std::size_t{32768}, std::size_t{40000}, std::size_t{300000}}) {
      auto* p = static_cast<unsigned char*>(heap.allocate(size, align));
      ASSERT_NE(p, nullptr) << size << "/" << align;
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << size << "/" << align;
      EXPECT_GE(heap.usable_size(p), size);
      std::memset(p, static_cast<int>(size & 0xFF), size);
      live.emplace_back(p, size);
    }
  }
  heap.collect();
  for (auto [p, size] : live) {
    for (std::size_t i = 0; i < size; i++) ASSERT_EQ(p[i], size & 0xFF);
    heap.free(p);
  }
  heap.collect();
  while (heap.sweep_one()) {
  }
  EXPECT_EQ(heap.stats().live_objects, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// Alignments past the page size make a large span that starts at the alignment; the pages
// skipped in front stay free runs, and the heap still verifies around them.
// A valid free of an object in this thread's P's current span ends in the free fast path, in any
// order and wherever the slot lies against free_index: a fast path that turns a valid free away
// is not wrong (the general checks accept it), only slower, so only this count shows it.
TEST(Heap, EveryValidFreeOfTheCurrentSpanEndsInTheFastPath) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  std::mt19937 rng(7);
  for (const testing::SizeClassInfo& c : testing::size_classes()) {
    if (c.span_class == 0) continue;
    // The span's first object: its allocation makes the span this P's current one.
    std::vector<void*> objs{heap.allocate(c.size, 8)};
    while (objs.size() < c.nelems / 2) objs.push_back(heap.allocate(c.size, 8));
    const std::uint64_t before = testing::held_frees(heap);
    heap.free(objs.back());  // the slot just below free_index
    objs.pop_back();
    if (objs.size() > 2) std::shuffle(objs.begin() + 1, objs.end(), rng);
    for (void* p : objs) heap.free(p);
    EXPECT_EQ(testing::held_frees(heap) - before, 0u) << "class " << c.span_class;
  }
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// Every size a class serves, at every alignment up to the page and through each way a thread
// enters its P, is allocated by a fast path (the one-load lookup of the common call, or the one
// for other sizes and alignments) and in the class the general path picks; the rest go to the
// general path. A fast path that declines is only slower, which only the count shows; one that
// picks a smaller class would hand out overlapping objects, a misaligned one broken ones.
TEST(Heap, EverySizeAClassServesIsAllocatedByAFastPathInItsClass) {
  for (ProcBinding binding : {ProcBinding::automatic, ProcBinding::fenced, ProcBinding::off}) {
    SCOPED_TRACE(binding == ProcBinding::automatic ? "automatic"
                 : binding == ProcBinding::fenced  ? "fenced"
                                                   : "off");
    testing::RecordingHandler rec;
    Options o = test::deterministic(1, rec);
    o.binding = binding;
    Heap heap(o);
    heap.free(heap.allocate(16));  // a thread's first call on a heap finds its P the general way
    std::vector<void*> live;
    for (std::size_t align = 1; align <= 2 * page_size; align *= 2) {
      std::size_t prev = 0;
      std::vector<std::size_t> sizes{0, max_small_size + 1, 40000};
      for (const testing::SizeClassInfo& c : testing::size_classes()) {
        if (c.span_class == 0) continue;
        for (std::size_t size : {prev + 1, (prev + c.size) / 2, std::size_t{c.size}})
          sizes.push_back(size);
        prev = c.size;
      }
      for (std::size_t size : sizes) {
        const unsigned cls = testing::size_to_class(size, align);
        const std::uint64_t before = testing::general_allocations(heap);
        void* p = heap.allocate(size, align);
        ASSERT_NE(p, nullptr) << size << "/" << align;
        EXPECT_EQ(testing::general_allocations(heap) - before, cls == 0 ? 1u : 0u)
            << size << "/" << align << ": class " << cls;
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << size << "/" << align;
        const PointerInfo info = heap.find_object(p);
        EXPECT_EQ(info.span_class, cls) << size << "/" << align;
        EXPECT_GE(info.size, size) << size << "/" << align;
        live.push_back(p);
      }
    }
    EXPECT_EQ(rec.count(), 0u);
    // An alignment that is not a power of two, from a thread already in the heap: the general
    // path's report, not an object (size_to_class alone would find a class for most of them).
    for (std::size_t align : {3, 24, 48, 1000}) {
      EXPECT_EQ(heap.allocate(64, align), nullptr) << align;
      const auto reports = rec.take();
      ASSERT_EQ(reports.size(), 1u) << align;
      EXPECT_EQ(reports[0].kind, ErrorKind::bad_alignment) << align;
    }
    for (void* p : live) heap.free(p);
    EXPECT_VERIFIED(heap);
    EXPECT_EQ(rec.count(), 0u);
  }
}

TEST(Heap, AlignmentBeyondThePage) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.arena_bytes = std::size_t{8} << 20;
  Heap heap(o);
  std::vector<void*> live;
  for (std::size_t align = 2 * page_size; align <= (std::size_t{4} << 20); align *= 2) {
    for (std::size_t size : {std::size_t{1}, std::size_t{100}, 3 * page_size + 5, align}) {
      void* p = heap.allocate(size, align);
      ASSERT_NE(p, nullptr) << size << "/" << align;
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << size << "/" << align;
      EXPECT_GE(heap.usable_size(p), size);
      std::memset(p, 0xAB, size);
      live.push_back(p);
      // A small neighbour lands in the pages skipped in front, which stay usable.
      live.push_back(heap.allocate(page_size));
    }
  }
  EXPECT_VERIFIED(heap);
  for (void* p : live) heap.free(p);
  heap.collect();
  while (heap.sweep_one()) {
  }
  EXPECT_EQ(heap.stats().live_objects, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// calloc's contract: the bytes read zero, whether the slot is fresh or reused after a sweep.
TEST(Heap, AllocateZeroedClearsReusedMemory) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  for (std::size_t size : {std::size_t{48}, std::size_t{3000}, std::size_t{100000}}) {
    std::vector<void*> v;
    for (int i = 0; i < 64; i++) {
      v.push_back(heap.allocate(size));
      std::memset(v.back(), 0x5A, size);
    }
    for (void* p : v) heap.free(p);
    heap.collect();
    while (heap.sweep_one()) {
    }
    for (int i = 0; i < 64; i++) {
      const auto* p = static_cast<const unsigned char*>(heap.allocate_zeroed(size));
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(std::count(p, p + size, 0), static_cast<std::ptrdiff_t>(size)) << size;
    }
  }
  EXPECT_EQ(rec.count(), 0u);
}

// calloc's call takes the allocation fast paths (no call reaches the general path) and clears what
// they hand out unless the span's pages are fresh: here the slots the owner collected from the
// previous round's frees, with no cycle in between.
TEST(Heap, AllocateZeroedTakesTheFastPathsAndClearsCollectedSlots) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  heap.free(heap.allocate(16));  // a thread's first call on a heap finds its P the general way
  for (std::size_t size :
       {std::size_t{8}, std::size_t{48}, std::size_t{3000}, std::size_t{20000}}) {
    for (int round = 0; round < 4; round++) {
      const std::uint64_t before = testing::general_allocations(heap);
      std::vector<unsigned char*> v;
      for (int i = 0; i < 200; i++) {
        auto* p = static_cast<unsigned char*>(heap.allocate_zeroed(size, size <= 8 ? 8 : 16));
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(std::count(p, p + size, 0), static_cast<std::ptrdiff_t>(size))
            << size << " B, round " << round << ", object " << i;
        std::memset(p, 0x5A, size);
        v.push_back(p);
      }
      EXPECT_EQ(testing::general_allocations(heap) - before, 0u) << size;
      for (unsigned char* p : v) heap.free(p);
    }
  }
  EXPECT_GT(heap.stats().collections, 0u) << "no slot was reused before a cycle";
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

// A free run merged from dirty pages and freshly committed ones is cleared as a whole: growth
// merges its clean run into the dirty free tail that a freed large object left behind, and the
// next allocation starts in the dirty pages.
TEST(Heap, AllocateZeroedClearsDirtyPagesMergedWithGrownOnes) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.arena_bytes = std::size_t{64} << 20;  // the growth stays in the same arena
  Heap heap(o);
  constexpr std::size_t dirty = 200000;
  void* a = heap.allocate(dirty);
  ASSERT_NE(a, nullptr);
  std::memset(a, 0x5A, dirty);
  heap.free(a);
  heap.collect();
  while (heap.sweep_one()) {
  }
  constexpr std::size_t big = std::size_t{4} << 20;  // more than the committed pages
  const auto* p = static_cast<const unsigned char*>(heap.allocate_zeroed(big));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(static_cast<const void*>(p), a) << "the allocation does not cover the dirty pages";
  ASSERT_EQ(std::count(p, p + big, 0), static_cast<std::ptrdiff_t>(big));
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

// Go's needzero: fresh pages are not cleared again, so a large calloc leaves them untouched (not
// resident) rather than faulting every page in.
TEST(Heap, AllocateZeroedSkipsFreshPages) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.arena_bytes = std::size_t{64} << 20;
  Heap heap(o);
  constexpr std::size_t size = std::size_t{32} << 20;
  void* p = heap.allocate_zeroed(size);
  ASSERT_NE(p, nullptr);
  const std::size_t os_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident(size / os_page);
  ASSERT_EQ(mincore(p, size, resident.data()), 0);
  const auto touched =
      std::count_if(resident.begin(), resident.end(), [](unsigned char r) { return (r & 1) != 0; });
  EXPECT_LT(touched, static_cast<std::ptrdiff_t>(resident.size() / 16));
  EXPECT_EQ(static_cast<unsigned char*>(p)[size - 1], 0);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Heap, StatsFollowAllocationsAndFrees) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  std::vector<void*> v;
  for (int i = 0; i < 100; i++) v.push_back(heap.allocate(64));
  Stats s = heap.stats();
  EXPECT_EQ(s.live_objects, 100u);
  EXPECT_EQ(s.live_bytes, 6400u);
  EXPECT_EQ(s.allocations, 100u);
  for (int i = 0; i < 40; i++) heap.free(v[static_cast<std::size_t>(i)]);
  s = heap.stats();
  EXPECT_EQ(s.pending_frees, 40u);
  EXPECT_EQ(s.frees, 40u);
  heap.collect();
  while (heap.sweep_one()) {
  }
  s = heap.stats();
  EXPECT_EQ(s.live_objects, 60u);
  EXPECT_EQ(s.pending_frees, 0u);
  EXPECT_EQ(s.cycles, 1u);
  EXPECT_EQ(std::accumulate(s.pause_histogram.begin(), s.pause_histogram.end(), std::uint64_t{0}),
            1u);
  EXPECT_GT(s.pause_max_ns, 0u);
  EXPECT_VERIFIED(heap);
}

TEST(Heap, PacingStartsCyclesByItself) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.gc_percent = 50;
  o.reuse = ReusePolicy::next_cycle;  // freed slots come back only through cycles
  Heap heap(o);
  for (int i = 0; i < 200000; i++) heap.free(heap.allocate(256));
  const Stats s = heap.stats();
  EXPECT_GE(s.cycles, 3u);
  // Freed memory is reused across cycles: the heap stays near the 4 MiB trigger floor.
  EXPECT_LT(s.mapped_bytes, std::size_t{64} << 20);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Heap, CollectEveryStressesTheProtocol) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.debug.collect_every = 64 * 1024;
  o.debug.verify_each_cycle = true;
  o.debug.clobber_freed = true;
  Heap heap(o);
  std::vector<void*> v;
  for (int i = 0; i < 20000; i++) {
    v.push_back(
        heap.proc(static_cast<unsigned>(i % 2)).allocate(static_cast<std::size_t>(i % 300) + 1));
    if (i % 3 == 0) {
      heap.proc(static_cast<unsigned>((i + 1) % 2)).free(v[v.size() / 2]);
      v.erase(v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2));
    }
  }
  EXPECT_GE(heap.stats().cycles, 10u);
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Heap, OptionsFromEnvironment) {
  setenv("SPANHEAP_PROCS", "3", 1);
  setenv("SPANHEAP_FLUSH", "eager", 1);
  setenv("SPANHEAP_MEMORY_LIMIT", "64M", 1);
  setenv("SPANHEAP_CHECKS", "expensive", 1);
  setenv("SPANHEAP_SWEEPERS", "0", 1);
  setenv("SPANHEAP_COMMIT_BYTES", "64K", 1);
  const Options o = Options::from_env();
  unsetenv("SPANHEAP_COMMIT_BYTES");
  unsetenv("SPANHEAP_PROCS");
  unsetenv("SPANHEAP_FLUSH");
  unsetenv("SPANHEAP_MEMORY_LIMIT");
  unsetenv("SPANHEAP_CHECKS");
  unsetenv("SPANHEAP_SWEEPERS");
  EXPECT_EQ(o.procs, 3u);
  EXPECT_EQ(o.flush, FlushPolicy::eager);
  EXPECT_EQ(o.memory_limit, std::size_t{64} << 20);
  EXPECT_EQ(o.checks, CheckLevel::expensive);
  EXPECT_EQ(o.sweepers, 0u);
  EXPECT_EQ(o.commit_bytes, std::size_t{64} << 10);
  Heap heap(o);
  EXPECT_EQ(heap.procs(), 3u);
}

// Many threads allocate, hand objects to each other through shared slots, verify contents and
// free what they receive, while another thread runs cycles and background sweepers sweep.
void run_threads(FlushPolicy flush) {
  testing::RecordingHandler rec;
  Options o;
  o.procs = 3;
  o.sweepers = 2;
  o.flush = flush;
  o.gc_percent = 25;
  o.checks = CheckLevel::debug;
  o.error_handler = rec.handler();
  Heap heap(o);
  constexpr unsigned threads = 4;
  constexpr unsigned slots = 256;
  std::atomic<void*> shared[slots] = {};
  std::atomic<bool> stop{false};
  std::atomic<unsigned> failures{0};
  auto fill = [](void* p, std::size_t n) {
    auto* w = static_cast<std::uint32_t*>(p);
    for (std::size_t i = 0; i < n / 4; i++) w[i] = static_cast<std::uint32_t>(n ^ i);
  };
  auto check = [&](void* p) {
    const std::size_t n = heap.usable_size(p);
    const auto* w = static_cast<const std::uint32_t*>(p);
    // The first word holds the requested size; the rest is derived from it.
    const std::size_t req = w[0] ^ 0u;
    if (req > n) {
      failures++;
      return;
    }
    for (std::size_t i = 1; i < req / 4; i++)
      if (w[i] != static_cast<std::uint32_t>(req ^ i)) {
        failures++;
        return;
      }
  };
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(t + 1);
      for (int i = 0; i < 20000 && failures == 0; i++) {
        const std::size_t n = 4 * (1 + rng() % (rng() % 16 == 0 ? 3000 : 64));
        // One allocation in four is calloc's: it reads its span's need_zero after leaving the P,
        // while cycles, sweepers and other threads' frees run (ThreadSanitizer checks the read).
        const bool zeroed = rng() % 4 == 0;
        void* p = zeroed ? heap.allocate_zeroed(n) : heap.allocate(n);
        if (p == nullptr) {
          failures++;
          return;
        }
        if (zeroed) {
          const auto* b = static_cast<const unsigned char*>(p);
          if (std::count(b, b + n, 0) != static_cast<std::ptrdiff_t>(n)) failures++;
        }
        fill(p, n);
        void* old = shared[rng() % slots].exchange(p);
        if (old != nullptr) {
          check(old);
          heap.free(old);
        }
      }
    });
  }
  std::thread collector([&] {
    while (!stop) {
      heap.collect();
      std::this_thread::yield();
    }
  });
  for (auto& t : ts) t.join();
  stop = true;
  collector.join();
  for (auto& s : shared)
    if (void* p = s.load()) {
      check(p);
      heap.free(p);
    }
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GE(heap.stats().cycles, 1u);
  EXPECT_VERIFIED(heap);
  for (const ErrorReport& r : rec.take()) ADD_FAILURE() << r.message;
}

TEST(HeapThreads, CrossThreadFreesWithConcurrentCyclesLazy) { run_threads(FlushPolicy::lazy); }
TEST(HeapThreads, CrossThreadFreesWithConcurrentCyclesEager) { run_threads(FlushPolicy::eager); }

TEST(HeapThreads, MoreThreadsThanPs) {
  testing::RecordingHandler rec;
  Options o;
  o.procs = 2;
  o.sweepers = 1;
  o.error_handler = rec.handler();
  Heap heap(o);
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; t++) {
    ts.emplace_back([&] {
      std::vector<void*> mine;
      for (int i = 0; i < 5000; i++) {
        mine.push_back(heap.allocate(static_cast<std::size_t>(i % 500) + 1));
        if (i % 2) {
          heap.free(mine.back());
          mine.pop_back();
        }
      }
      for (void* p : mine) heap.free(p);
    });
  }
  ts.emplace_back([&] {
    for (int i = 0; i < 20; i++) heap.collect();
  });
  for (auto& t : ts) t.join();
  heap.collect();
  while (heap.sweep_one()) {
  }
  // sweep_one() finds nothing left to take while the background sweeper may still be sweeping the
  // last span it took, whose frees it has not counted yet: wait for the cycle's sweep to be done.
  EXPECT_TRUE(test::wait_until([&] { return testing::sweep_done(heap); }, std::chrono::seconds(10)))
      << "the cycle's sweep never finished";
  EXPECT_EQ(heap.stats().live_objects, 0u);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {
TEST(Heap, TracePrintsOneLinePerCycle) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(2, rec);
  o.trace = true;
  Heap heap(o);
  heap.allocate(64);
  ::testing::internal::CaptureStderr();
  heap.collect();
  heap.collect();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2);
  EXPECT_NE(err.find("spanheap: cycle 1 sg=2 pause="), std::string::npos) << err;
  EXPECT_NE(err.find("spanheap: cycle 2 sg=4 pause="), std::string::npos) << err;
  EXPECT_NE(err.find("flush=lazy"), std::string::npos) << err;
}
}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {

// find_object / usable_size on objects the caller holds, while other threads allocate, free,
// collect and sweep (so spans around them are emptied, freed, coalesced and recycled): exact, and
// race-free under TSan (docs/design.md §"Bad input" states what is guaranteed for other pointers).
TEST(FindObject, IsExactForLiveObjectsWhileOtherThreadsChurn) {
  testing::RecordingHandler rec;
  Options o;
  o.procs = 2;
  o.sweepers = 1;
  o.gc_percent = 25;
  o.error_handler = rec.handler();
  Heap heap(o);
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (unsigned t = 0; t < 2; t++) {
    churn.emplace_back([&, t] {
      std::vector<void*> mine;
      for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++) {
        mine.push_back(heap.allocate(16 + (i * 13 + t) % 5000));
        if (mine.size() > 200) {
          for (void* p : mine) heap.free(p);
          mine.clear();
        }
        if (i % 256 == 0) heap.collect();
      }
      for (void* p : mine) heap.free(p);
    });
  }
  unsigned mismatches = 0;
  for (int round = 0; round < 200; round++) {
    std::vector<std::pair<void*, std::size_t>> held;
    for (int i = 0; i < 50; i++) {
      const std::size_t size = 8 + static_cast<std::size_t>((round * 50 + i) * 37 % 40000);
      held.emplace_back(heap.allocate(size), size);
    }
    for (auto [p, size] : held) {
      const PointerInfo info = heap.find_object(p);
      const std::size_t usable = heap.usable_size(p);
      if (info.kind != PointerKind::object_start || info.base != p || info.pending_free ||
          info.size != usable || usable < size)
        mismatches++;
      if (heap.find_object(static_cast<char*>(p) + 1).kind != PointerKind::interior) mismatches++;
    }
    for (auto [p, size] : held) heap.free(p);
  }
  stop = true;
  for (std::thread& t : churn) t.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(rec.count(), 0u);
  const VerifyResult v = heap.verify();
  EXPECT_TRUE(v.ok()) << v.to_string();
}

}  // namespace
}  // namespace spanheap
