// Option validation: every Options field and SPANHEAP_* variable out of its range is a misuse
// report (or, for the environment, a stderr line) naming the field, the value and what is used.
#include <gtest/gtest.h>

#include <climits>
#include <cstdlib>
#include <string>

#include "test_util.hpp"

namespace spanheap {
namespace {

std::vector<std::string> messages(testing::RecordingHandler& rec) {
  std::vector<std::string> out;
  for (const ErrorReport& r : rec.take()) {
    EXPECT_EQ(r.kind, ErrorKind::misuse) << r.message;
    out.push_back(r.message);
  }
  return out;
}

TEST(Options, OutOfRangeFieldsAreMisuseAndClamped) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.procs = 100000;
  o.sweepers = UINT_MAX;  // once wrapped the sweeper slot count to 0
  o.arena_bytes = 1;
  o.commit_bytes = 0;
  o.flush = static_cast<FlushPolicy>(9);
  o.binding = static_cast<ProcBinding>(5);
  o.checks = static_cast<CheckLevel>(7);
  Heap heap(o);
  EXPECT_EQ(messages(rec),
            (std::vector<std::string>{
                "spanheap: misuse: Options::procs 100000 is outside [0, 256]; "
                "using 256",
                "spanheap: misuse: Options::sweepers 4294967295 is outside [0, "
                "64]; using 64",
                "spanheap: misuse: Options::arena_bytes 1 is outside [1048576, "
                "1099511627776]; using 1048576",
                "spanheap: misuse: Options::commit_bytes 0 is outside [8192, "
                "1048576]; using 8192",
                "spanheap: misuse: Options::flush 9 is not a FlushPolicy; using lazy",
                "spanheap: misuse: Options::binding 5 is not a ProcBinding; using automatic",
                "spanheap: misuse: Options::checks 7 is not a CheckLevel; using "
                "release",
            }));
  EXPECT_EQ(heap.procs(), 256u);
  EXPECT_EQ(heap.options().sweepers, 64u);
  EXPECT_EQ(heap.options().flush, FlushPolicy::lazy);
  void* p = heap.allocate(100);
  ASSERT_NE(p, nullptr);
  heap.free(p);
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Options, InRangeFieldsAreNotReported) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(256, rec);
  o.sweepers = 64;
  o.arena_bytes = std::size_t{1} << 40;
  o.commit_bytes = std::size_t{1} << 40;
  Heap heap(o);
  EXPECT_EQ(rec.count(), 0u);
}

// Each bad value is refused with a line on stderr and leaves the field as it was.
TEST(Options, OutOfRangeEnvironmentValuesAreRefused) {
  const struct {
    const char* name;
    const char* value;
    const char* says;
  } cases[] = {
      {"SPANHEAP_SWEEPERS", "4294967296",
       "ignoring SPANHEAP_SWEEPERS=4294967296: not a valid "
       "value; using 1"},
      {"SPANHEAP_PROCS", "99999999999999999999999", "ignoring SPANHEAP_PROCS="},
      {"SPANHEAP_MEMORY_LIMIT", "20000000000G", "ignoring SPANHEAP_MEMORY_LIMIT=20000000000G"},
      {"SPANHEAP_GC_PERCENT", "-1",
       "ignoring SPANHEAP_GC_PERCENT=-1: not a valid value; using 100"},
      {"SPANHEAP_FLUSH", "sometimes", "ignoring SPANHEAP_FLUSH=sometimes: not lazy or eager"},
      {"SPANHEAP_BINDING", "on", "ignoring SPANHEAP_BINDING=on: not automatic, fenced or off"},
  };
  for (const auto& c : cases) {
    setenv(c.name, c.value, 1);
    ::testing::internal::CaptureStderr();
    const Options o = Options::from_env();
    const std::string err = ::testing::internal::GetCapturedStderr();
    unsetenv(c.name);
    EXPECT_NE(err.find(std::string("spanheap: misuse: ") + c.says), std::string::npos)
        << c.name << ": " << err;
    const Options d;
    EXPECT_EQ(o.sweepers, d.sweepers);
    EXPECT_EQ(o.procs, d.procs);
    EXPECT_EQ(o.memory_limit, d.memory_limit);
    EXPECT_EQ(o.gc_percent, d.gc_percent);
    EXPECT_EQ(o.flush, d.flush);
    EXPECT_EQ(o.binding, d.binding);
  }
  setenv("SPANHEAP_BINDING", "fenced", 1);
  EXPECT_EQ(Options::from_env().binding, ProcBinding::fenced);
  setenv("SPANHEAP_BINDING", "off", 1);
  EXPECT_EQ(Options::from_env().binding, ProcBinding::off);
  unsetenv("SPANHEAP_BINDING");
}

// A heap built from explicit Options reads SPANHEAP_TRACE only: a bad value of another variable is
// not its business, and was printed again at every construction.
TEST(Options, AHeapFromExplicitOptionsReadsOnlyTheTraceVariable) {
  setenv("SPANHEAP_PROCS", "lots", 1);
  setenv("SPANHEAP_TRACE", "1", 1);
  testing::RecordingHandler rec;
  ::testing::internal::CaptureStderr();
  {
    Heap heap(test::deterministic(1, rec));
    heap.free(heap.allocate(64));
    heap.collect();
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  unsetenv("SPANHEAP_PROCS");
  unsetenv("SPANHEAP_TRACE");
  EXPECT_EQ(err.find("SPANHEAP_PROCS"), std::string::npos) << err;
  EXPECT_NE(err.find("spanheap: cycle 1 "), std::string::npos)
      << "SPANHEAP_TRACE=1 printed no cycle line";
  EXPECT_EQ(rec.count(), 0u);
}

TEST(Options, AFailedSweeperStartIsAReportNotATerminate) {
  testing::RecordingHandler rec;
  Options o = test::deterministic(1, rec);
  o.sweepers = 3;
  Heap heap(o);
  testing::fail_thread_starts(heap, 1);  // the first of three fails to start
  void* p = heap.allocate(64);
  heap.free(p);
  heap.collect();  // sweepers start at the first cycle
  const auto reports = rec.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ErrorKind::out_of_memory);
  EXPECT_EQ(reports[0].message.rfind("spanheap: out_of_memory: cannot start background sweeper 1 "
                                     "of 3 (",
                                     0),
            0u)
      << reports[0].message;
  EXPECT_NE(reports[0].message.find("continuing with 0"), std::string::npos);
  heap.collect();  // not retried: no second report
  EXPECT_TRUE(heap.verify().ok());
  EXPECT_EQ(rec.count(), 0u);
}

}  // namespace
}  // namespace spanheap
