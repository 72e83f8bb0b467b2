// Heap::find_object / usable_size on a pointer whose span is being returned to the page heap by
// another thread. page_free marks the span free and then rewrites its fields (nelems, and start /
// npages when coalescing merges it); a classification read at that moment must be either the old
// one (the slot as the sweep left it) or the new one (free pages), never a mix, and never a data
// race (these tests are aimed at the tsan preset, where an unsynchronised read is a report).
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace spanheap {
namespace {

// Classifies `p` on a second thread and, once that classification has loaded p's in-use span and
// is about to read its fields (find_object_span_read), runs `release` here: the release returns
// the span to the page heap. The classifier waits for the release to finish (bounded: a correct
// find_object keeps page_free waiting, so the release cannot finish first) and then reads. A
// find_object that does not hold the span's release off reads fields page_free has rewritten: a
// torn answer in any build, and a data race under ThreadSanitizer. The handshake back is a relaxed
// flag on purpose: it orders nothing for ThreadSanitizer.
template <typename Release>
PointerInfo classify_across_release(Heap& heap, const void* p, Release release) {
  std::atomic<bool> go{false};
  std::atomic<bool> released{false};
  int windows = 0;
  testing::set_protocol_hook(heap, [&](testing::ProtocolPoint point) {
    if (point != testing::ProtocolPoint::find_object_span_read || windows++ != 0) return;
    go.store(true, std::memory_order_release);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (!released.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  });
  PointerInfo seen;
  std::size_t usable = 1;
  std::thread classifier([&] {
    seen = heap.find_object(p);
    usable = heap.usable_size(p);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!go.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_TRUE(go.load()) << "find_object never reached the span's fields";
  release();
  released.store(true, std::memory_order_relaxed);
  classifier.join();
  testing::set_protocol_hook(heap, {});
  // usable_size is 0 for anything but a live object's start, and the object here is dead.
  EXPECT_EQ(usable, 0u);
  return seen;
}

// A small span emptied by its sweep (the path of the concurrent bad-free driver's report).
TEST(FindObject, IsOldOrNewWhileASweepFreesTheSpan) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  auto* a = static_cast<char*>(heap.allocate(64));
  heap.collect();  // the span goes to central, swept
  heap.free(a);
  testing::begin_cycle(heap);  // unswept; its sweep empties it and frees its pages
  testing::ragged_barrier(heap);
  const PointerInfo info = classify_across_release(heap, a + 1, [&] { heap.sweep_one(); });
  // The span as it was before its release, whole: the slot pending its sweep, or (when the sweep's
  // bit work ran while the classifier held page_free off) reclaimed. Never a span tail or a
  // base computed from rewritten fields.
  EXPECT_TRUE((info.kind == PointerKind::interior && info.pending_free) ||
              info.kind == PointerKind::free_slot)
      << "kind " << static_cast<int>(info.kind) << ", pending " << info.pending_free;
  EXPECT_EQ(info.base, a);
  EXPECT_EQ(info.size, 64u);
  EXPECT_NE(info.span_class, 0u);
  EXPECT_EQ(heap.find_object(a).kind, PointerKind::free_pages);
  EXPECT_EQ(rec.count(), rec.count(ErrorKind::misuse));  // only usable_size's own report
}

// A large object's free releases its span at once (T10), while other threads may classify it.
TEST(FindObject, IsOldOrNewWhileALargeFreeReleasesTheSpan) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  constexpr std::size_t size = max_small_size + 3 * page_size;  // one large object: its own span
  auto* big = static_cast<char*>(heap.allocate(size));
  auto* neighbour = static_cast<char*>(heap.allocate(size));  // a live span after it
  const PointerInfo info = classify_across_release(heap, big + page_size, [&] { heap.free(big); });
  EXPECT_EQ(info.kind, PointerKind::interior) << static_cast<int>(info.kind);
  EXPECT_EQ(info.base, big);
  EXPECT_EQ(info.size, size);
  EXPECT_EQ(info.span_class, 0u);
  EXPECT_EQ(heap.find_object(big).kind, PointerKind::free_pages);
  EXPECT_EQ(heap.find_object(neighbour).kind, PointerKind::object_start);
  heap.free(neighbour);
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), rec.count(ErrorKind::misuse));  // only usable_size's own report
}

// An object allocated since its span's last sweep counts as allocated because its slot lies below
// free_index; its allocation bit is still clear. A sweep of the span sets the bit, then publishes
// free_index = 0. The classifier here waits between its two loads (find_object_between_loads)
// while the span's stale P sweeps it in its lazy flush. Read in slot_allocated's order, free_index
// first, it sees the old index (allocated); read the other way round it would take the old clear
// bit and the new index, and call a live object a free slot (the race the soaks once found).
TEST(FindObject, ALiveObjectStaysAllocatedWhenItsSpanIsSweptBetweenTheLoads) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.binding = ProcBinding::off;
  Heap heap(o);
  void* obj = heap.proc(0).allocate(64);
  void* other = heap.proc(0).allocate(64);
  testing::begin_cycle(heap);  // P0 stale: the span at sg+1, not swept, obj's bit still clear
  std::atomic<bool> between{false};
  std::atomic<bool> swept{false};
  bool swept_in_window = false;
  int windows = 0;
  testing::set_protocol_hook(heap,
                             [&](testing::ProtocolPoint) {
                               if (windows++ != 0) return;
                               between = true;
                               const auto deadline =
                                   std::chrono::steady_clock::now() + std::chrono::seconds(10);
                               while (!swept.load() && std::chrono::steady_clock::now() < deadline)
                                 std::this_thread::yield();
                               swept_in_window = swept.load();
                             },
                             {testing::ProtocolPoint::find_object_between_loads});
  PointerInfo seen;
  std::thread classifier([&] { seen = heap.find_object(obj); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!between.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(between.load()) << "find_object never reached its loads";
  const std::uint64_t before = heap.stats().swept_by_flush;
  heap.proc(0).free(other);  // P0's lazy flush sweeps the span: obj's bit set, free_index 0
  const std::uint64_t after = heap.stats().swept_by_flush;
  swept = true;
  classifier.join();
  testing::set_protocol_hook(heap, {});
  EXPECT_GT(after, before) << "the free's lazy flush swept nothing";
  EXPECT_TRUE(swept_in_window) << "the sweep did not run between the classifier's loads";
  EXPECT_EQ(seen.kind, PointerKind::object_start)
      << "kind " << static_cast<int>(seen.kind) << " for a live object";
  EXPECT_FALSE(seen.pending_free);
  EXPECT_EQ(heap.find_object(obj).kind, PointerKind::object_start);
  heap.free(obj);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_VERIFIED(heap);
}

// A hook set for some points runs at those and no others, and an empty set means every point.
TEST(ProtocolHook, RunsOnlyAtThePointsItAskedFor) {
  testing::RecordingHandler rec;
  Heap heap(test::deterministic(1, rec));
  constexpr std::size_t size = max_small_size + 3 * page_size;  // large: its free is a page_free
  std::vector<testing::ProtocolPoint> seen;
  auto record = [&](testing::ProtocolPoint point) { seen.push_back(point); };
  testing::set_protocol_hook(heap, record, {testing::ProtocolPoint::page_free_begin});
  void* big = heap.allocate(size);
  EXPECT_EQ(heap.find_object(big).kind, PointerKind::object_start);
  EXPECT_TRUE(seen.empty()) << "find_object ran a hook set only for page_free_begin";
  heap.free(big);
  EXPECT_EQ(seen, std::vector{testing::ProtocolPoint::page_free_begin});
  seen.clear();
  testing::set_protocol_hook(heap, record);
  big = heap.allocate(size);
  EXPECT_EQ(heap.find_object(big).kind, PointerKind::object_start);
  EXPECT_EQ(seen, (std::vector{testing::ProtocolPoint::find_object_span_read,
                               testing::ProtocolPoint::find_object_between_loads}));
  testing::set_protocol_hook(heap, {});
  seen.clear();
  heap.free(big);
  EXPECT_TRUE(seen.empty()) << "a removed hook still ran";
  EXPECT_VERIFIED(heap);
  EXPECT_EQ(rec.count(), 0u);
}

}  // namespace
}  // namespace spanheap
