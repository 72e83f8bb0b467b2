// One test per error kind: the right kind is reported, the message names the pointer and what it
// is (Scudo's report_test.cpp), and the heap stays intact afterwards (verify() is clean).
#include "report.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <regex>
#include <stdexcept>

#include <unistd.h>

#include "test_util.hpp"

namespace spanheap {
namespace {

using ::testing::MatchesRegex;

struct ReportTest : ::testing::Test {
  testing::RecordingHandler rec;
  Heap heap{test::deterministic(2, rec)};

  ErrorReport only_report() {
    auto reports = rec.take();
    EXPECT_EQ(reports.size(), 1u);
    if (reports.empty()) return ErrorReport{ErrorKind::corruption, nullptr, "<no report>"};
    return reports.front();
  }
  void TearDown() override {
    EXPECT_VERIFIED(heap);
    for (const ErrorReport& r : rec.take()) ADD_FAILURE() << "unexpected report: " << r.message;
  }
};

const char* const span_suffix =
    R"(\(ptr=0x[0-9a-f]+, offset=[0-9]+, span=0x[0-9a-f]+, class=[0-9]+, size=[0-9]+\))";

TEST_F(ReportTest, InvalidFreeOfAFreeSlot) {
  auto* a = static_cast<char*>(heap.allocate(64));
  heap.free(a + 64 * 5);  // a slot of the same span that was never handed out
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::invalid_free);
  EXPECT_EQ(r.ptr, a + 64 * 5);
  EXPECT_THAT(r.message, MatchesRegex(std::string("spanheap: invalid_free: free slot that holds no "
                                                  "object ") +
                                      span_suffix));
  heap.free(a);
}

TEST_F(ReportTest, InvalidFreeIntoFreePages) {
  auto* a = static_cast<char*>(heap.allocate(64));
  heap.free(a + 600 * 1024);  // same arena, pages never used
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::invalid_free);
  EXPECT_THAT(r.message, MatchesRegex("spanheap: invalid_free: pointer into free pages that never "
                                      "held an object \\(ptr=0x[0-9a-f]+\\)"));
}

// A pointer into the tail of a span, past its last object, for every class that has one: at the
// tail's first byte (where one more object would start, so the slot arithmetic lands exactly on
// nelems), in its middle and at its last byte. The span is the current one of this thread's P,
// so the free fast path judges the pointer first; it must turn each away as the general path does.
TEST_F(ReportTest, InvalidFreeIntoTheTailOfEverySpan) {
  unsigned tails = 0;
  for (const testing::SizeClassInfo& c : testing::size_classes()) {
    if (c.span_class == 0 || c.tail_waste == 0) continue;
    tails++;
    // Alignment 8, so that the classes of odd multiples of 8 serve it too.
    auto* a = static_cast<char*>(heap.allocate(c.size, 8));
    ASSERT_EQ(testing::size_to_class(c.size, 8), c.span_class);
    const std::uintptr_t tail = testing::span_start(heap, a) + std::uintptr_t{c.nelems} * c.size;
    for (const std::uintptr_t bad : {tail, tail + c.tail_waste / 2, tail + c.tail_waste - 1}) {
      heap.free(reinterpret_cast<void*>(bad));
      const ErrorReport r = only_report();
      EXPECT_EQ(r.kind, ErrorKind::invalid_free)
          << "class " << c.span_class << " at tail + " << bad - tail;
      EXPECT_THAT(r.message,
                  MatchesRegex(std::string("spanheap: invalid_free: pointer into the tail of a "
                                           "span, past its last object ") +
                               span_suffix))
          << "class " << c.span_class;
    }
    EXPECT_VERIFIED(heap);
    heap.free(a);
  }
  EXPECT_GT(tails, 10u);
}

TEST_F(ReportTest, InteriorFree) {
  auto* a = static_cast<char*>(heap.allocate(256));
  heap.free(a + 8);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::interior_free);
  EXPECT_THAT(r.message,
              MatchesRegex(std::string("spanheap: interior_free: pointer into the middle "
                                       "of a live object ") +
                           span_suffix));
  EXPECT_NE(r.message.find("offset=8,"), std::string::npos);
  // The object is still live and intact: a correct free goes through.
  heap.free(a);
  EXPECT_EQ(rec.count(), 0u);
}

TEST_F(ReportTest, DoubleFreeWithinACycle) {
  void* a = heap.allocate(100);
  heap.free(a);
  heap.free(a);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::double_free);
  EXPECT_THAT(r.message, MatchesRegex(std::string("spanheap: double_free: object already freed, "
                                                  "not yet reclaimed \\(pending\\) ") +
                                      span_suffix));
}

TEST_F(ReportTest, DoubleFreeAcrossCycles) {
  void* keep = heap.proc(0).allocate(100);
  void* a = heap.proc(0).allocate(100);
  heap.free(a);
  heap.collect();
  while (heap.sweep_one()) {
  }
  heap.free(a);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::double_free);
  EXPECT_THAT(r.message, MatchesRegex(std::string("spanheap: double_free: object already freed and "
                                                  "reclaimed \\(by a sweep or a collection\\) ") +
                                      span_suffix));
  heap.free(keep);
}

TEST_F(ReportTest, DoubleFreeAfterItsSpanWasReleased) {
  void* big = heap.allocate(100000);
  heap.free(big);
  heap.collect();
  while (heap.sweep_one()) {
  }
  heap.free(big);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::double_free);
  EXPECT_THAT(r.message, MatchesRegex("spanheap: double_free: object already freed: its span was "
                                      "reclaimed and its pages are free \\(ptr=0x[0-9a-f]+\\)"));
}

TEST_F(ReportTest, ForeignFree) {
  int local = 0;
  heap.free(&local);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::foreign_free);
  EXPECT_EQ(r.ptr, &local);
  EXPECT_THAT(r.message, MatchesRegex("spanheap: foreign_free: pointer is not in memory of any "
                                      "spanheap heap \\(ptr=0x[0-9a-f]+\\)"));
}

TEST_F(ReportTest, FreeThroughTheWrongHeapIsMisuse) {
  testing::RecordingHandler other_rec;
  Heap other(test::deterministic(1, other_rec));
  void* a = other.allocate(64);
  heap.free(a);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::misuse);
  EXPECT_THAT(r.message, MatchesRegex("spanheap: misuse: pointer belongs to another spanheap heap: "
                                      "free through the wrong heap \\(ptr=0x[0-9a-f]+\\)"));
  other.free(a);
  EXPECT_EQ(other_rec.count(), 0u);
  EXPECT_TRUE(other.verify().ok());
}

TEST_F(ReportTest, SizeOverflow) {
  EXPECT_EQ(heap.allocate(SIZE_MAX), nullptr);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::size_overflow);
  EXPECT_THAT(r.message, MatchesRegex("spanheap: size_overflow: size [0-9]+ exceeds the largest "
                                      "object spanheap allocates \\([0-9]+ bytes\\)"));
}

TEST_F(ReportTest, BadAlignment) {
  EXPECT_EQ(heap.allocate(64, 24), nullptr);
  EXPECT_EQ(only_report().kind, ErrorKind::bad_alignment);
  EXPECT_EQ(heap.allocate(64, 2 * max_alloc_size), nullptr);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::bad_alignment);
  EXPECT_THAT(r.message, MatchesRegex("spanheap: bad_alignment: alignment 2199023255552 is not a "
                                      "power of two between 1 and 1099511627776 \\(size=64\\)"));
}

TEST_F(ReportTest, ProcIndexOutOfRangeIsMisuse) {
  Proc p = heap.proc(7);
  EXPECT_EQ(p.index(), 0u);
  EXPECT_THAT(only_report().message,
              MatchesRegex("spanheap: misuse: Heap::proc\\(7\\): the heap has only 2 P\\(s\\); "
                           "using P 0"));
}

TEST_F(ReportTest, UsableSizeOfAnInteriorPointerIsMisuse) {
  auto* a = static_cast<char*>(heap.allocate(48));
  EXPECT_EQ(heap.usable_size(a), 48u);
  EXPECT_EQ(heap.usable_size(a + 1), 0u);
  const ErrorReport r = only_report();
  EXPECT_EQ(r.kind, ErrorKind::misuse);
  EXPECT_THAT(r.message,
              MatchesRegex(".*usable_size of a pointer that is not a live object's start "
                           "\\(ptr=0x[0-9a-f]+, interior pointer\\)"));
}

TEST(ReportOom, OutOfMemoryFromTheOs) {
  testing::RecordingHandler rec;
  testing::FakeOsMemory os;
  Options o = test::deterministic(1, rec);
  o.os = &os;
  Heap heap(o);
  os.fail_reserves(1);
  EXPECT_EQ(heap.allocate(64), nullptr);
  auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ErrorKind::out_of_memory);
  EXPECT_THAT(reports[0].message,
              MatchesRegex("spanheap: out_of_memory: cannot allocate 64 bytes \\(align 16\\): the "
                           "OS refused more memory"));
  // The heap is intact and usable once the OS says yes again.
  EXPECT_NE(heap.allocate(64), nullptr);
  EXPECT_TRUE(heap.verify().ok());
}

TEST(ReportOom, MemoryLimit) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.memory_limit = 4 << 20;
  Heap heap(o);
  EXPECT_NE(heap.allocate(1 << 20), nullptr);
  EXPECT_EQ(heap.allocate(8 << 20), nullptr);
  auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ErrorKind::out_of_memory);
  EXPECT_NE(reports[0].message.find("memory limit"), std::string::npos);
  EXPECT_TRUE(heap.verify().ok());
}

TEST(ReportCorruption, WriteAfterFreeIsCaughtAtAllocation) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.debug.clobber_freed = true;
  Heap heap(o);
  auto* a = static_cast<char*>(heap.allocate(128));
  void* b = heap.allocate(128);
  heap.free(a);
  heap.collect();
  while (heap.sweep_one()) {
  }
  a[17] = 1;  // write after free (the slot is reclaimed and clobbered)
  void* again = heap.allocate(128);
  EXPECT_EQ(again, a);
  auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ErrorKind::corruption);
  EXPECT_THAT(reports[0].message,
              MatchesRegex("spanheap: corruption: write after free: byte 17 of a reclaimed "
                           "128-byte object was modified .*"));
  heap.free(b);
}

TEST(ReportDefault, DefaultHandlerPrintsAndAborts) {
  EXPECT_DEATH(
      {
        Options o;
        o.procs = 1;
        o.sweepers = 0;
        Heap heap(o);
        int local = 0;
        heap.free(&local);
      },
      "spanheap: foreign_free: pointer is not in memory of any spanheap heap");
}

TEST(ReportNames, EveryKindHasAStableName) {
  const char* names[] = {"invalid_free",  "interior_free", "double_free",
                         "foreign_free",  "out_of_memory", "size_overflow",
                         "bad_alignment", "misuse",        "corruption"};
  for (std::size_t k = 0; k < error_kind_count; k++)
    EXPECT_STREQ(to_string(static_cast<ErrorKind>(k)), names[k]);
}

}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {
TEST(ReportOom, AtTheLimitWithPacingACycleRunsBeforeGivingUp) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.memory_limit = 8 << 20;
  o.gc_percent = 100;
  Heap heap(o);
  // 6 MiB live then freed: without a cycle the next 6 MiB would cross the limit.
  void* a = heap.allocate(6 << 20);
  ASSERT_NE(a, nullptr);
  heap.free(a);
  const std::uint64_t cycles = heap.stats().cycles;
  EXPECT_NE(heap.allocate(6 << 20), nullptr);
  EXPECT_GT(heap.stats().cycles, cycles);
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_TRUE(heap.verify().ok());
}
}  // namespace
}  // namespace spanheap

namespace spanheap {
namespace {

// The contract: an error handler must not throw (it may return or end the process). A report can
// come from inside a heap call, with a P or a lock held, where unwinding would leave the P
// running or the world stopped. The heap enforces it: a throwing handler is itself a misuse
// report through the default handler, which aborts. Each statement below would carry on after
// the throw (or hang, wedged: alarm() turns that into a death without the message).
void throwing_handler(const ErrorReport&) { throw std::runtime_error("handler threw"); }

TEST(ReportHandler, ThrowingFromAReportOutsideAHeapCallAborts) {
  EXPECT_DEATH(
      {
        alarm(10);
        Options o;
        o.procs = 1;
        o.sweepers = 0;
        o.error_handler = throwing_handler;
        Heap heap(o);
        int local = 0;
        try {
          heap.free(&local);
        } catch (const std::exception&) {
        }
        heap.collect();
        std::exit(0);
      },
      "spanheap: misuse: the error handler threw \\(handler threw\\) while handling: spanheap: "
      "foreign_free: ");
}

TEST(ReportHandler, ThrowingFromAReportInsideAHeapCallAborts) {
  EXPECT_DEATH(
      {
        alarm(10);
        Options o;
        o.procs = 1;
        o.sweepers = 0;
        o.gc_percent = 0;
        o.debug.clobber_freed = true;
        o.error_handler = throwing_handler;
        Heap heap(o);
        auto* a = static_cast<char*>(heap.allocate(128));
        heap.allocate(128);  // keeps the span in use once a is reclaimed
        heap.free(a);
        heap.collect();
        while (heap.sweep_one()) {
        }
        a[3] = 1;  // write after free: reported at the next allocation, with the P held
        try {
          heap.allocate(128);
        } catch (const std::exception&) {
        }
        heap.collect();  // a leaked P would stop this for ever
        std::exit(0);
      },
      "spanheap: misuse: the error handler threw \\(handler threw\\) while handling: spanheap: "
      "corruption: write after free");
}

}  // namespace
}  // namespace spanheap
