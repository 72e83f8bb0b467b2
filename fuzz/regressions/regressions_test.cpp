// Fuzz regressions as readable programs: each TEST below was printed by `ci/repro <file> --save`
// (Program::to_gtest) for an input kept in fuzz/regressions/<target>/, and runs the program
// through the same executor and oracle as the fuzzers. See README.md here.
#include <gtest/gtest.h>

#include "executor.hpp"
#include "program.hpp"

namespace spanheap::fuzz {
namespace {

// sweep_target converted a product past 2^64 to uint64_t (undefined): a one-page trigger under a
// memory limit (query 2: committed above 90% of the limit) gives a ratio of ~2.6e9 pages per
// byte. Found by the pacing target in its first second; fixed by saturating.
TEST(FuzzRegression, pacing_caada0b8d8c6) {
  const Program program = Program{.target = Target::pacing,
                                  .config = {},
                                  .ops = {
                                      PacingQuery{.survivors = 49180668519u,
                                                  .gc_percent = 111u,
                                                  .memory_limit = 22494630013216u,
                                                  .committed = 959272899211040u,
                                                  .pages_to_sweep = 3814813792u,
                                                  .allocated = 988385666926u},
                                      PacingQuery{.survivors = 100600307644637306u,
                                                  .gc_percent = 0u,
                                                  .memory_limit = 747867825523u,
                                                  .committed = 49771176088111u,
                                                  .pages_to_sweep = 14u,
                                                  .allocated = 10196792256868u},
                                      PacingQuery{.survivors = 57469182067u,
                                                  .gc_percent = 100u,
                                                  .memory_limit = 4083249763u,
                                                  .committed = 452638896173u,
                                                  .pages_to_sweep = 19140307594599u,
                                                  .allocated = 411652988091198u},
                                      PacingQuery{.survivors = 3849086308u,
                                                  .gc_percent = 0u,
                                                  .memory_limit = 34360405604u,
                                                  .committed = 0u,
                                                  .pages_to_sweep = 0u,
                                                  .allocated = 0u},
                                  }};
  const Outcome outcome = run(program);
  EXPECT_TRUE(outcome.ok) << outcome.report(program);
}

// plan_pacing multiplied the survivors by gc_percent in 64 bits: 2^60 bytes at 4294967295% wrapped
// to a trigger of 1.7e17 instead of 5.8e17 (then capped by the memory limit). Step 3 of
// fuzz/regressions/pacing/crash-pacing-5215ae5a6691...; fixed with exact, saturating arithmetic.
TEST(FuzzRegression, pacing_5215ae5a6691) {
  const Program program = Program{.target = Target::pacing,
                                  .config = {},
                                  .ops = {
                                      PacingQuery{.survivors = 1152921504606846975u,
                                                  .gc_percent = 4294967295u,
                                                  .memory_limit = 648518346341351423u,
                                                  .committed = 17162u,
                                                  .pages_to_sweep = 2u,
                                                  .allocated = 0u},
                                      PacingQuery{.survivors = 9349472826423246849u,
                                                  .gc_percent = 100u,
                                                  .memory_limit = 0u,
                                                  .committed = 4026531840u,
                                                  .pages_to_sweep = 393219u,
                                                  .allocated = 1610612736u},
                                  }};
  const Outcome outcome = run(program);
  EXPECT_TRUE(outcome.ok) << outcome.report(program);
}

// The scavenger must release exactly a free span's pages. With it releasing one page more (the
// planted bug of ci/mutants.d/17), the span freed in step 1 is released two collections later,
// taking with it the first page of the 2048-byte-aligned object of step 3, whose contents read
// back as zeros: 'Check failed: contents_intact'. Found by alloc_free in its first second against
// that mutant (ci/oss-fuzz-check --src --expect-crash), minimised to 13 bytes.
TEST(FuzzRegression, alloc_free_5c5a750447f8) {
  const Program program = Program{.target = Target::alloc_free,
                                  .config = {.procs = 2,
                                             .flush = FlushPolicy::eager,
                                             .gc_percent = 0,
                                             .arena_mib = 1,
                                             .fake_os = false,
                                             .memory_limit_mib = 0,
                                             .reuse = ReusePolicy::next_cycle},
                                  .ops = {
                                      Alloc{.proc = via_heap, .size = 54, .align = 16},
                                      Free{.proc = via_heap, .pick = 110},
                                      Collect{},
                                      Alloc{.proc = via_heap, .size = 11, .align = 2048},
                                      Collect{},
                                      Collect{},
                                  }};
  const Outcome outcome = run(program);
  EXPECT_TRUE(outcome.ok) << outcome.report(program);
}

// A bad free through the facade of a pointer inside a pending object after a cycle: the thread's
// P (P0, the only one) was stale, and its flush at acquire swept and released the object's span,
// so the heap said double_free ("its pages are free") where the model, which allowed that flush
// only for a stale explicit P, wanted invalid_free. The model's bug: a facade call flushes the
// facade's P when it is stale, which the model now knows to be facade_proc. Reduced by hand from
// the first bad_free smoke run whose proc bytes could name the facade; that input failed only in
// a process whose earlier executions had left the thread's first choice at one of eight Ps,
// which is why the executor now names it (testing::prefer_proc).
TEST(FuzzRegression, bad_free_dd7d0af243e7) {
  const Program program = Program{
      .target = Target::bad_free,
      .config = {.procs = 1,
                 .flush = FlushPolicy::lazy,
                 .gc_percent = 0,
                 .arena_mib = 1,
                 .fake_os = false,
                 .memory_limit_mib = 0,
                 .reuse = ReusePolicy::owner},
      .ops = {
          Alloc{.proc = 0, .size = 3744, .align = 16},
          Free{.proc = 0, .pick = 0},
          BeginCycle{},
          BadFree{.kind = BadKind::pending_interior, .proc = via_heap, .pick = 0, .offset = 2051},
      }};
  const Outcome outcome = run(program);
  EXPECT_TRUE(outcome.ok) << outcome.report(program);
}

// The second heap of an other_heap bad free allocated through its facade, which made it the
// thread's last heap; the main heap's next facade call (the last step) found P0 still bound to
// this thread from step 3, took the first idle P instead, P1, stale, whose flush at acquire
// released the freed object's span: double_free where the model, which runs facade calls on P0,
// wanted invalid_free. The executor now calls the second heap through a Proc handle, which leaves
// the thread's affinity alone. Found by the asan-ubsan preset's bad_free smoke, reduced by
// removing operations while it still failed.
TEST(FuzzRegression, bad_free_c5d5fc0ec6b5) {
  const Program program = Program{
      .target = Target::bad_free,
      .config = {.procs = 7,
                 .flush = FlushPolicy::lazy,
                 .gc_percent = 35,
                 .arena_mib = 3,
                 .fake_os = true,
                 .memory_limit_mib = 52,
                 .reuse = ReusePolicy::next_cycle},
      .ops = {
          Alloc{.proc = 1, .size = 28795, .align = 8192},
          Free{.proc = 3, .pick = 179},
          BeginCycle{},
          Alloc{.proc = via_heap, .size = 13850, .align = 1024},
          BadFree{.kind = BadKind::other_heap, .proc = 6, .pick = 66, .offset = 4706},
          BadFree{
              .kind = BadKind::pending_interior, .proc = via_heap, .pick = 202, .offset = 14732},
      }};
  const Outcome outcome = run(program);
  EXPECT_TRUE(outcome.ok) << outcome.report(program);
}

}  // namespace
}  // namespace spanheap::fuzz
