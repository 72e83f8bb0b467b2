// Printing a Program (program.hpp): as a numbered trace a person can follow, and as C++ that
// compiles back into the same Program (a GoogleTest regression case), the way tcmalloc prints its
// fuzz programs. program_test.cpp pins both forms.
#include <fmt/format.h>

#include <string>
#include <type_traits>

#include "program.hpp"

namespace spanheap::fuzz {
namespace {

std::string who(unsigned proc) { return proc == via_heap ? "heap" : fmt::format("P{}", proc); }
std::string proc_cpp(unsigned proc) {
  return proc == via_heap ? "via_heap" : fmt::format("{}", proc);
}
const char* flush_name(FlushPolicy f) { return f == FlushPolicy::lazy ? "lazy" : "eager"; }
const char* reuse_name(ReusePolicy r) { return r == ReusePolicy::owner ? "owner" : "next_cycle"; }

}  // namespace

std::string describe(const Op& any) {
  return std::visit(
      [](const auto& op) -> std::string {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, Alloc>) {
          return fmt::format("{}.allocate(size={}, align={})", who(op.proc), op.size, op.align);
        } else if constexpr (std::is_same_v<T, Free>) {
          return fmt::format("{}.free(live[{}])", who(op.proc), op.pick);
        } else if constexpr (std::is_same_v<T, Refill>) {
          return fmt::format("refill(live[{}])", op.pick);
        } else if constexpr (std::is_same_v<T, Check>) {
          return fmt::format("check(live[{}])", op.pick);
        } else if constexpr (std::is_same_v<T, Collect>) {
          return "heap.collect()";
        } else if constexpr (std::is_same_v<T, BeginCycle>) {
          return "testing::begin_cycle()";
        } else if constexpr (std::is_same_v<T, RaggedBarrier>) {
          return "testing::ragged_barrier()";
        } else if constexpr (std::is_same_v<T, FlushIdle>) {
          return fmt::format("testing::flush_idle(P{})", op.proc);
        } else if constexpr (std::is_same_v<T, FlushAll>) {
          return "testing::flush_all()";
        } else if constexpr (std::is_same_v<T, Wake>) {
          return fmt::format("P{}.wake()", op.proc);
        } else if constexpr (std::is_same_v<T, SweepOne>) {
          return "heap.sweep_one()";
        } else if constexpr (std::is_same_v<T, ProportionalSweep>) {
          return fmt::format("testing::proportional_sweep(bytes={})", op.bytes);
        } else if constexpr (std::is_same_v<T, Verify>) {
          return "heap.verify()";
        } else if constexpr (std::is_same_v<T, BadFree>) {
          return fmt::format("{}.bad_free({}, pick={}, offset={})", who(op.proc),
                             to_string(op.kind), op.pick, op.offset);
        } else if constexpr (std::is_same_v<T, BadAlloc>) {
          return fmt::format("{}.allocate(size={:#x}, align={}) [bad]", who(op.proc), op.size,
                             op.align);
        } else if constexpr (std::is_same_v<T, FailOs>) {
          return fmt::format("os.{}({})", to_string(op.fault), op.n);
        } else if constexpr (std::is_same_v<T, SizeQuery>) {
          return fmt::format("size_to_class(size={}, align={})", op.size, op.align);
        } else if constexpr (std::is_same_v<T, PacingQuery>) {
          return fmt::format(
              "pacing(survivors={}, gc_percent={}, memory_limit={}, committed={}, "
              "pages_to_sweep={}, allocated={})",
              op.survivors, op.gc_percent, op.memory_limit, op.committed, op.pages_to_sweep,
              op.allocated);
        } else if constexpr (std::is_same_v<T, Corrupt>) {
          return fmt::format("corrupt(live[{}])", op.pick);
        } else {
          static_assert(!sizeof(T), "every operation needs a description");
        }
      },
      any);
}

std::string describe_config(const Program& p) {
  if (!has_heap(p.target)) return "no heap";
  const HeapConfig& c = p.config;
  return fmt::format(
      "procs={} flush={} gc_percent={} arena={}MiB fake_os={} memory_limit={}MiB reuse={}", c.procs,
      flush_name(c.flush), c.gc_percent, c.arena_mib, c.fake_os, c.memory_limit_mib,
      reuse_name(c.reuse));
}

std::string to_trace(const Program& p) {
  std::string out;
  fmt::format_to(std::back_inserter(out), "program {}: {}, {} ops\n", to_string(p.target),
                 describe_config(p), p.ops.size());
  for (std::size_t i = 0; i < p.ops.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "  {:4}  {}\n", i, describe(p.ops[i]));
  }
  return out;
}

namespace {

std::string op_cpp(const Op& any) {
  return std::visit(
      [](const auto& op) -> std::string {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, Alloc>) {
          return fmt::format("Alloc{{.proc = {}, .size = {}, .align = {}}}", proc_cpp(op.proc),
                             op.size, op.align);
        } else if constexpr (std::is_same_v<T, Free>) {
          return fmt::format("Free{{.proc = {}, .pick = {}}}", proc_cpp(op.proc), op.pick);
        } else if constexpr (std::is_same_v<T, Refill>) {
          return fmt::format("Refill{{.pick = {}}}", op.pick);
        } else if constexpr (std::is_same_v<T, Check>) {
          return fmt::format("Check{{.pick = {}}}", op.pick);
        } else if constexpr (std::is_same_v<T, Collect>) {
          return "Collect{}";
        } else if constexpr (std::is_same_v<T, BeginCycle>) {
          return "BeginCycle{}";
        } else if constexpr (std::is_same_v<T, RaggedBarrier>) {
          return "RaggedBarrier{}";
        } else if constexpr (std::is_same_v<T, FlushIdle>) {
          return fmt::format("FlushIdle{{.proc = {}}}", op.proc);
        } else if constexpr (std::is_same_v<T, FlushAll>) {
          return "FlushAll{}";
        } else if constexpr (std::is_same_v<T, Wake>) {
          return fmt::format("Wake{{.proc = {}}}", op.proc);
        } else if constexpr (std::is_same_v<T, SweepOne>) {
          return "SweepOne{}";
        } else if constexpr (std::is_same_v<T, ProportionalSweep>) {
          return fmt::format("ProportionalSweep{{.bytes = {}}}", op.bytes);
        } else if constexpr (std::is_same_v<T, Verify>) {
          return "Verify{}";
        } else if constexpr (std::is_same_v<T, BadFree>) {
          return fmt::format("BadFree{{.kind = BadKind::{}, .proc = {}, .pick = {}, .offset = {}}}",
                             to_string(op.kind), proc_cpp(op.proc), op.pick, op.offset);
        } else if constexpr (std::is_same_v<T, BadAlloc>) {
          return fmt::format("BadAlloc{{.proc = {}, .size = {:#x}, .align = {}}}",
                             proc_cpp(op.proc), op.size, op.align);
        } else if constexpr (std::is_same_v<T, FailOs>) {
          return fmt::format("FailOs{{.fault = OsFault::{}, .n = {}}}", to_string(op.fault), op.n);
        } else if constexpr (std::is_same_v<T, SizeQuery>) {
          return fmt::format("SizeQuery{{.size = {}, .align = {}}}", op.size, op.align);
        } else if constexpr (std::is_same_v<T, PacingQuery>) {
          return fmt::format(
              "PacingQuery{{.survivors = {}u, .gc_percent = {}u, .memory_limit = {}u, "
              ".committed = {}u, .pages_to_sweep = {}u, .allocated = {}u}}",
              op.survivors, op.gc_percent, op.memory_limit, op.committed, op.pages_to_sweep,
              op.allocated);
        } else if constexpr (std::is_same_v<T, Corrupt>) {
          return fmt::format("Corrupt{{.pick = {}}}", op.pick);
        } else {
          static_assert(!sizeof(T), "every operation needs a C++ form");
        }
      },
      any);
}

}  // namespace

std::string to_cpp(const Program& p) {
  const HeapConfig& c = p.config;
  const std::string config =
      has_heap(p.target)
          ? fmt::format(
                "{{.procs = {}, .flush = FlushPolicy::{}, .gc_percent = {}, .arena_mib = {},\n"
                "               .fake_os = {}, .memory_limit_mib = {}, .reuse = ReusePolicy::{}}}",
                c.procs, flush_name(c.flush), c.gc_percent, c.arena_mib, c.fake_os,
                c.memory_limit_mib, reuse_name(c.reuse))
          : std::string("{}");
  std::string out = fmt::format(
      "Program{{\n"
      "    .target = Target::{},\n"
      "    .config = {},\n"
      "    .ops = {{\n",
      to_string(p.target), config);
  for (const Op& op : p.ops) fmt::format_to(std::back_inserter(out), "        {},\n", op_cpp(op));
  out += "    }}";
  return out;
}

std::string to_gtest(const Program& p, std::string_view test_name) {
  std::string body = to_cpp(p);
  // Indent the expression to sit inside the test body.
  std::string indented;
  for (char ch : body) {
    indented += ch;
    if (ch == '\n') indented += "  ";
  }
  return fmt::format(
      "TEST(FuzzRegression, {}) {{\n"
      "  const Program program = {};\n"
      "  const Outcome outcome = run(program);\n"
      "  EXPECT_TRUE(outcome.ok) << outcome.report(program);\n"
      "}}\n",
      test_name, indented);
}

}  // namespace spanheap::fuzz
