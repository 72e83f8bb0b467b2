// Tests of the fuzz program library: the byte codec round-trips, the printer's two forms are
// pinned (and the C++ form compiles, below), the oracle passes clean programs and fails broken
// ones, and the artifact hash matches SHA-1.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "executor.hpp"
#include "program.hpp"

namespace spanheap::fuzz {
namespace {

std::vector<std::uint8_t> random_bytes(std::mt19937_64& rng, std::size_t max_len) {
  std::vector<std::uint8_t> b(rng() % (max_len + 1));
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

TEST(ProgramCodec, AnyBytesDecodeAndEncodeBack) {
  std::mt19937_64 rng(42);
  for (Target t : all_targets) {
    for (int i = 0; i < 2000; ++i) {
      const auto bytes = random_bytes(rng, 300);
      const Program p = decode(t, bytes);
      ASSERT_LE(p.ops.size(), max_ops);
      const auto encoded = encode(p);
      ASSERT_TRUE(encoded.has_value()) << to_trace(p);
      ASSERT_EQ(decode(t, *encoded), p) << to_trace(p);
    }
  }
}

TEST(ProgramCodec, EmptyInputIsAnEmptyProgram) {
  const Program p = decode(Target::alloc_free, {});
  EXPECT_TRUE(p.ops.empty());
  EXPECT_EQ(p.config, HeapConfig{});
}

TEST(ProgramCodec, HeaderChoosesHeapOptions) {
  // procs 4, eager, pacing (gc 5 + 10*2), fake OS, arena 3 MiB; memory limit 8 MiB.
  const std::uint8_t bytes[] = {3 | 8 | 16 | 32 | (2 << 6), 2 | (2 << 4)};
  const Program p = decode(Target::procs_interleave, bytes);
  EXPECT_EQ(p.config, (HeapConfig{.procs = 4,
                                  .flush = FlushPolicy::eager,
                                  .gc_percent = 25,
                                  .arena_mib = 3,
                                  .fake_os = true,
                                  .memory_limit_mib = 8,
                                  .reuse = ReusePolicy::next_cycle}));
  // Bit 3 of byte 1 selects owner reuse; clear (every input written before it), next_cycle.
  const std::uint8_t owner[] = {0, 8};
  EXPECT_EQ(decode(Target::bad_free, owner).config.reuse, ReusePolicy::owner);
}

TEST(ProgramCodec, ProcBytesWithBothTopBitsSetGoThroughTheFacade) {
  // procs_interleave with 3 Ps: Free opcodes (table slot 4), each a proc byte and a pick of 5.
  const std::uint8_t bytes[] = {2, 0, 4, 0x07, 5, 4, 0xBF, 5, 4, 0xC0, 5, 4, 0xFF, 5};
  const Program p = decode(Target::procs_interleave, bytes);
  ASSERT_EQ(p.ops.size(), 4u);
  EXPECT_EQ(std::get<Free>(p.ops[0]), (Free{.proc = 7 % 3, .pick = 5}));
  EXPECT_EQ(std::get<Free>(p.ops[1]), (Free{.proc = 0xBF % 3, .pick = 5}));
  EXPECT_EQ(std::get<Free>(p.ops[2]), (Free{.proc = via_heap, .pick = 5}));
  EXPECT_EQ(std::get<Free>(p.ops[3]), (Free{.proc = via_heap, .pick = 5}));
  // The facade encodes as 0xC0; a P as its index, which every generated seed uses.
  const std::vector<std::uint8_t> canonical = {2, 0, 4, 1, 5, 4, 2, 5, 4, 0xC0, 5, 4, 0xC0, 5};
  EXPECT_EQ(encode(p), canonical);
  // The targets without explicit Ps read no proc byte and take only the facade.
  Program af{.target = Target::alloc_free, .config = {}, .ops = {Free{.proc = 1, .pick = 5}}};
  EXPECT_FALSE(encode(af).has_value());
}

TEST(ProgramCodec, FreedInteriorKindsComeFromTheOffsetsTopBit) {
  // BadFree opcode of bad_free (table slot 7), kind double_pending (1), P0, pick 2, offset 0x8005.
  const std::uint8_t bytes[] = {0, 0, 7, 1, 0, 2, 0x05, 0x80};
  const Program p = decode(Target::bad_free, bytes);
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(std::get<BadFree>(p.ops[0]),
            (BadFree{.kind = BadKind::pending_interior, .proc = 0, .pick = 2, .offset = 5}));
  EXPECT_EQ(encode(p), std::vector<std::uint8_t>(std::begin(bytes), std::end(bytes)));
  Program doubled = p;
  doubled.ops[0] = BadFree{.kind = BadKind::double_pending, .proc = 0, .pick = 2, .offset = 0x8005};
  EXPECT_FALSE(encode(doubled).has_value());  // it would decode as pending_interior
}

TEST(ProgramCodec, TestOnlyOperationsDoNotEncode) {
  const Program p{.target = Target::alloc_free, .config = {}, .ops = {Corrupt{0}}};
  EXPECT_FALSE(encode(p).has_value());
}

// The program printed below by to_cpp(), pasted back as C++: if the printer's output stops being
// valid C++ for these types, this file stops compiling.
const Program kPrinted =
    Program{.target = Target::procs_interleave,
            .config = {.procs = 2,
                       .flush = FlushPolicy::lazy,
                       .gc_percent = 0,
                       .arena_mib = 1,
                       .fake_os = false,
                       .memory_limit_mib = 0,
                       .reuse = ReusePolicy::next_cycle},
            .ops = {
                Alloc{.proc = 1, .size = 48, .align = 16},
                BeginCycle{},
                Free{.proc = 0, .pick = 0},
                FlushIdle{.proc = 1},
                BadFree{.kind = BadKind::interior, .proc = 0, .pick = 3, .offset = 9},
                BadAlloc{.proc = via_heap, .size = 0x10000000001, .align = 16},
            }};

TEST(ProgramPrinter, CppFormIsPinnedAndCompiles) {
  EXPECT_EQ(
      to_cpp(kPrinted),
      "Program{\n"
      "    .target = Target::procs_interleave,\n"
      "    .config = {.procs = 2, .flush = FlushPolicy::lazy, .gc_percent = 0, .arena_mib = 1,\n"
      "               .fake_os = false, .memory_limit_mib = 0, .reuse = ReusePolicy::next_cycle},\n"
      "    .ops = {\n"
      "        Alloc{.proc = 1, .size = 48, .align = 16},\n"
      "        BeginCycle{},\n"
      "        Free{.proc = 0, .pick = 0},\n"
      "        FlushIdle{.proc = 1},\n"
      "        BadFree{.kind = BadKind::interior, .proc = 0, .pick = 3, .offset = 9},\n"
      "        BadAlloc{.proc = via_heap, .size = 0x10000000001, .align = 16},\n"
      "    }}");
}

TEST(ProgramPrinter, TraceIsOneNumberedLinePerOperation) {
  EXPECT_EQ(to_trace(kPrinted),
            "program procs_interleave: procs=2 flush=lazy gc_percent=0 arena=1MiB fake_os=false "
            "memory_limit=0MiB reuse=next_cycle, 6 ops\n"
            "     0  P1.allocate(size=48, align=16)\n"
            "     1  testing::begin_cycle()\n"
            "     2  P0.free(live[0])\n"
            "     3  testing::flush_idle(P1)\n"
            "     4  P0.bad_free(interior, pick=3, offset=9)\n"
            "     5  heap.allocate(size=0x10000000001, align=16) [bad]\n");
}

TEST(ProgramPrinter, GtestSnippetWrapsTheProgram) {
  const std::string s = to_gtest(kPrinted, "procs_interleave_example");
  EXPECT_EQ(s.rfind("TEST(FuzzRegression, procs_interleave_example) {\n  const Program program = "
                    "Program{\n",
                    0),
            0u)
      << s;
  EXPECT_NE(s.find("  const Outcome outcome = run(program);\n"), std::string::npos) << s;
  EXPECT_NE(s.find("EXPECT_TRUE(outcome.ok) << outcome.report(program);"), std::string::npos) << s;
}

TEST(Oracle, CleanProgramPasses) {
  const Program p{.target = Target::alloc_free,
                  .config = {},
                  .ops = {Alloc{.size = 100}, Alloc{.size = 5000}, Free{.pick = 0}, Collect{},
                          Alloc{.size = 100}, Collect{}, SweepOne{}, Check{.pick = 1}, Verify{}}};
  const Outcome o = run(p, RunOptions{.trace = true});
  EXPECT_TRUE(o.ok) << o.report(p);
  EXPECT_EQ(o.ops_run, p.ops.size());
}

// Corrupt stands in for a heap that scribbles on a live object.
Program program_that_corrupts_an_object() {
  return Program{.target = Target::alloc_free,
                 .config = {},
                 .ops = {Alloc{.size = 64}, Alloc{.size = 64}, Corrupt{.pick = 1}, Collect{}}};
}

TEST(Oracle, FailsWhenAnObjectChanges) {
  // The very next check must fail and name the object and offset.
  const Program p = program_that_corrupts_an_object();
  const Outcome o = run(p);
  ASSERT_FALSE(o.ok);
  EXPECT_EQ(o.step, 2u);
  EXPECT_NE(o.failure.find("contents of #1"), std::string::npos) << o.failure;
  EXPECT_NE(o.failure.find("offset 63"), std::string::npos) << o.failure;
  EXPECT_EQ(o.check, CheckId::contents_intact);
  EXPECT_EQ(o.crash_state(), "contents_intact");
}

TEST(OracleDeathTest, FailureEndsInItsCheckLine) {
  // What triage sees: the check's name with no address or object number, then an abort (through
  // check_failed::contents_intact, check_ids.cpp).
  const Program p = program_that_corrupts_an_object();
  const Outcome o = run(p);
  ASSERT_FALSE(o.ok);
  EXPECT_DEATH(
      {
        set_current_input_path("input-under-test");  // the hook then saves nothing
        default_failure_hook(p, o, {});
      },
      "\\[spanheap:alloc_free_fuzzer\\] Check failed: contents_intact\n");
}

TEST(Oracle, BadFreesAreReportedWithTheirKind) {
  const Program p{
      .target = Target::bad_free,
      .config = {.procs = 2},
      .ops = {Alloc{.proc = 0, .size = 64}, Alloc{.proc = 1, .size = 100000},
              BadFree{.kind = BadKind::interior, .proc = 1, .pick = 0, .offset = 5},
              BadFree{.kind = BadKind::foreign, .proc = 0, .pick = 0, .offset = 3},
              BadFree{.kind = BadKind::other_heap, .proc = 0, .pick = 0, .offset = 3},
              Free{.proc = 1, .pick = 0},
              BadFree{.kind = BadKind::double_pending, .proc = 0, .pick = 0, .offset = 0},
              BadAlloc{.proc = 0, .size = 10, .align = 3}}};
  const Outcome o = run(p, RunOptions{.trace = true});
  EXPECT_TRUE(o.ok) << o.report(p);
}

TEST(Harness, Sha1MatchesTheStandardVectors) {
  const std::string abc = "abc";
  EXPECT_EQ(sha1_hex({reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()}),
            "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_hex({}), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

}  // namespace
}  // namespace spanheap::fuzz
