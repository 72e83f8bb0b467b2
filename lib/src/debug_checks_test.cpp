// The debug options (Options::debug) checked over their whole range: a write after free at the
// first and the last byte of an object of the smallest class, of the largest classes and of a
// large object is caught where docs/design.md says it is — by clobber_freed at the reallocation of
// a slot that a sweep reclaimed, by ASan at the access itself with poison_freed — and with the
// exact error kind; collect_every starts a cycle exactly when its byte count is reached, and
// verify_each_cycle reports what the verifier finds at every cycle.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "heap_state.hpp"
#include "test_util.hpp"

namespace spanheap {
namespace {

using ::testing::HasSubstr;

Options debug_heap(testing::RecordingHandler& rec, ReusePolicy reuse) {
  Options o = test::deterministic(1, rec);
  o.reuse = reuse;
  o.debug.clobber_freed = true;
  return o;
}

// The largest class whose spans hold more than one object, and the largest class of all (one
// object per span: its slot is reclaimed in a live span only by a sweep done for free(), which
// keeps the emptied span).
testing::SizeClassInfo largest_shared_class() {
  testing::SizeClassInfo best{};
  for (const testing::SizeClassInfo& c : testing::size_classes())
    if (c.nelems > 1 && c.size > best.size) best = c;
  return best;
}

std::size_t smallest_class_size() { return testing::size_classes().front().size; }
std::size_t middle_class_size() {
  const auto classes = testing::size_classes();
  return classes[classes.size() / 2].size;
}
std::size_t largest_class_size() { return testing::size_classes().back().size; }

struct Boundary {
  std::size_t size;
  ReusePolicy reuse;
};

class ClobberBoundary : public ::testing::TestWithParam<Boundary> {};

// Frees `x` (beside a live anchor in the same span), lets a cycle's sweep reclaim and clobber its
// slot, writes `value` at byte `offset` (when `offset` is set) and allocates the slot again.
// Returns the reports of that allocation.
std::vector<ErrorReport> write_after_sweep(Heap& heap, testing::RecordingHandler& rec,
                                           std::size_t size, std::optional<std::size_t> offset) {
  // Alignment 8: the 8-byte class serves only requests that do not ask for the default 16.
  void* anchor = heap.allocate(size, 8);
  auto* x = static_cast<unsigned char*>(heap.allocate(size, 8));
  EXPECT_EQ(testing::span_start(heap, anchor), testing::span_start(heap, x)) << size;
  heap.free(x);
  heap.collect();  // the barrier flushes the stale cache: its sweep reclaims and clobbers x
  while (heap.sweep_one()) {
  }
  EXPECT_EQ(rec.count(), 0u);
  if (offset) x[*offset] = 0x00;  // the pattern byte is 0xDF
  void* again = heap.allocate(size, 8);
  EXPECT_EQ(again, x) << "the reclaimed slot was not handed out again (size " << size << ")";
  std::vector<ErrorReport> reports = rec.take();
  heap.free(again);
  heap.free(anchor);
  EXPECT_VERIFIED(heap);
  return reports;
}

void expect_write_after_free(const std::vector<ErrorReport>& reports, std::size_t size,
                             std::size_t byte) {
  ASSERT_EQ(reports.size(), 1u) << "no report for a write at byte " << byte << " of " << size;
  EXPECT_EQ(reports[0].kind, ErrorKind::corruption);
  EXPECT_THAT(reports[0].message,
              HasSubstr(fmt::format("write after free: byte {} of a reclaimed {}-byte object", byte,
                                    size)));
}

TEST_P(ClobberBoundary, FirstByte) {
  testing::RecordingHandler rec;
  Heap heap(debug_heap(rec, GetParam().reuse));
  const std::size_t size = GetParam().size;
  expect_write_after_free(write_after_sweep(heap, rec, size, 0), size, 0);
}

TEST_P(ClobberBoundary, LastByte) {
  testing::RecordingHandler rec;
  Heap heap(debug_heap(rec, GetParam().reuse));
  const std::size_t size = GetParam().size;
  expect_write_after_free(write_after_sweep(heap, rec, size, size - 1), size, size - 1);
}

TEST_P(ClobberBoundary, FirstByteOfTheLastWord) {
  testing::RecordingHandler rec;
  Heap heap(debug_heap(rec, GetParam().reuse));
  const std::size_t size = GetParam().size;
  expect_write_after_free(write_after_sweep(heap, rec, size, size - 8), size, size - 8);
}

// The other side of the boundary: an untouched reclaimed slot comes back without a report (a
// check reading past the object, or a scrub that misses part of it, would report here).
TEST_P(ClobberBoundary, NoWriteNoReport) {
  testing::RecordingHandler rec;
  Heap heap(debug_heap(rec, GetParam().reuse));
  EXPECT_TRUE(write_after_sweep(heap, rec, GetParam().size, std::nullopt).empty());
}

INSTANTIATE_TEST_SUITE_P(
    Classes, ClobberBoundary,
    ::testing::Values(Boundary{smallest_class_size(), ReusePolicy::owner},
                      Boundary{smallest_class_size(), ReusePolicy::next_cycle},
                      Boundary{middle_class_size(), ReusePolicy::owner},
                      Boundary{largest_shared_class().size, ReusePolicy::owner},
                      Boundary{largest_shared_class().size, ReusePolicy::next_cycle}),
    [](const ::testing::TestParamInfo<Boundary>& param) {
      return fmt::format("Size{}{}", param.param.size,
                         param.param.reuse == ReusePolicy::owner ? "Owner" : "NextCycle");
    });

// The largest class holds one object per span, so a sweep empties the span and hands its pages
// back: the slot is reclaimed in a live span only when the sweep is done for a free() (a double
// free here), which keeps the emptied span for the next cycle. Its write after free is caught then.
TEST(ClobberLargestClass, LastByteAfterASweepDoneForAFree) {
  testing::RecordingHandler rec;
  Heap heap(debug_heap(rec, ReusePolicy::owner));
  const std::size_t size = largest_class_size();
  auto* x = static_cast<unsigned char*>(heap.allocate(size));
  void* y = heap.allocate(size);  // the refill parks x's full span
  const std::vector<void*> evicted = test::evict_to_central(
      heap, size, x, [&](std::size_t n) { return heap.allocate(n); });  // ... then evicts it
  heap.free(x);
  heap.collect();  // x's span waits unswept on its central list
  heap.free(x);    // its sweep (for this free) reclaims and clobbers x, keeps the span
  ASSERT_EQ(rec.count(ErrorKind::double_free), 1u);
  rec.clear();
  x[size - 1] = 0x00;
  heap.free(y);
  void* again = heap.allocate(size);
  ASSERT_EQ(again, x);
  expect_write_after_free(rec.take(), size, size - 1);
  heap.free(again);
  for (void* e : evicted) heap.free(e);
}

// Large objects are not clobbered: their pages go back to the page heap when they are freed (or
// swept) and are handed out again as a fresh span. What catches a write into them is ASan at the
// access, with poison_freed (below).
TEST(ClobberLargeObject, IsNotCheckedAtReallocation) {
  for (ReusePolicy reuse : {ReusePolicy::owner, ReusePolicy::next_cycle}) {
    testing::RecordingHandler rec;
    Heap heap(debug_heap(rec, reuse));
    const std::size_t size = max_small_size + page_size;
    auto* x = static_cast<unsigned char*>(heap.allocate(size));
    heap.free(x);
    heap.collect();
    while (heap.sweep_one()) {
    }
    EXPECT_EQ(testing::span_start(heap, x), 0u) << "the freed large span is still in use";
    x[0] = 0x00;  // writes after free into pages that hold no object
    x[size - 1] = 0x00;
    void* again = heap.allocate(size);
    EXPECT_EQ(again, x);
    EXPECT_EQ(rec.count(), 0u);
    heap.free(again);
  }
}

// collect_every: a cycle when the bytes allocated (usable sizes) reach the threshold, not one
// object earlier, then counting again from zero.
TEST(CollectEvery, CyclesExactlyAtTheThreshold) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  constexpr std::size_t every = 64 * 10;
  o.debug.collect_every = every;
  Heap heap(o);
  std::vector<void*> held;
  for (int round = 1; round <= 3; round++) {
    for (int i = 0; i < 9; i++) held.push_back(heap.allocate(60));  // 64-byte class
    EXPECT_EQ(heap.stats().cycles, static_cast<std::uint64_t>(round - 1)) << "round " << round;
    held.push_back(heap.allocate(64));
    EXPECT_EQ(heap.stats().cycles, static_cast<std::uint64_t>(round)) << "round " << round;
  }
  // A large object counts its whole usable size.
  held.push_back(heap.allocate(max_small_size + 1));
  EXPECT_EQ(heap.stats().cycles, 4u);
  for (void* p : held) heap.free(p);
  EXPECT_EQ(rec.count(), 0u);
}

// verify_each_cycle: every cycle runs the verifier and reports each violation as corruption.
TEST(VerifyEachCycle, ReportsWhatTheVerifierFindsAtEveryCycle) {
  for (bool on : {false, true}) {
    testing::RecordingHandler rec;
    Options o = test::deterministic(1, rec);
    o.checks = CheckLevel::debug;  // no verifier at the bump: only the option's own runs
    o.debug.verify_each_cycle = on;
    Heap heap(o);
    void* p = heap.allocate(100);
    // Stats that disagree with the spans (INV-C): one object counted reclaimed that is not.
    heap.state().counters.reclaimed_objects.fetch_add(1);
    heap.collect();
    heap.collect();
    heap.state().counters.reclaimed_objects.fetch_sub(1);
    const std::vector<ErrorReport> reports = rec.take();
    if (!on) {
      EXPECT_TRUE(reports.empty());
    } else {
      ASSERT_EQ(reports.size(), 2u) << "one report per cycle";
      for (const ErrorReport& r : reports) {
        EXPECT_EQ(r.kind, ErrorKind::corruption);
        EXPECT_THAT(r.message, HasSubstr("verify: INV-C: stats live_objects"));
      }
    }
    heap.free(p);
  }
}

#if defined(SPANHEAP_ASAN)
// poison_freed: any access to a freed object, at its first or last byte, is caught by ASan at the
// access, for the smallest class, the largest class and a large object.
void read_after_free(std::size_t size, std::size_t byte) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.debug.poison_freed = true;
  Heap heap(o);
  void* anchor = heap.allocate(size, 8);
  auto* p = static_cast<volatile unsigned char*>(heap.allocate(size, 8));
  heap.free(const_cast<unsigned char*>(p));
  (void)p[byte];
  heap.free(anchor);
}

TEST(PoisonBoundary, FirstAndLastByteOfEveryKindOfObject) {
  for (std::size_t size :
       {smallest_class_size(), largest_class_size(), max_small_size + page_size}) {
    EXPECT_DEATH(read_after_free(size, 0), "use-after-poison") << size;
    EXPECT_DEATH(read_after_free(size, size - 1), "use-after-poison") << size;
  }
}
#endif

}  // namespace
}  // namespace spanheap
