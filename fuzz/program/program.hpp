// A fuzz program: the typed form of a fuzz input. Every target decodes its bytes into a Program
// (heap options plus a list of operations), runs it against a fresh deterministic heap with the
// shadow-model oracle (executor.hpp), and prints it as a readable trace or as a GoogleTest snippet
// (printer.cpp). docs/fuzzing.md describes the byte encoding and each target's operation mix.
//
// Operations are small structs in a std::variant (tcmalloc's span_fuzz does the same), so a
// program printed as C++ designated initializers compiles back into the same Program.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace spanheap::fuzz {

// One entry per fuzz target (fuzz/<name>_fuzzer.cpp). The target picks the operation mix.
enum class Target : std::uint8_t {
  alloc_free,
  procs_interleave,
  bad_free,
  page_heap,
  size_classes,
  pacing
};
inline constexpr Target all_targets[] = {Target::alloc_free,   Target::procs_interleave,
                                         Target::bad_free,     Target::page_heap,
                                         Target::size_classes, Target::pacing};
// Targets that run on a heap (and start their input with the two header bytes); size_classes
// and pacing test pure functions.
inline constexpr bool has_heap(Target t) noexcept {
  return t != Target::size_classes && t != Target::pacing;
}
const char* to_string(Target target) noexcept;
std::optional<Target> target_from_string(std::string_view name) noexcept;

// `proc` value meaning "through the Heap facade (the calling thread's P)" instead of an explicit
// Proc handle.
inline constexpr unsigned via_heap = 255;

// Heap options chosen by the first two input bytes. Everything else is fixed by the executor:
// sweepers = 0, checks = debug, debug.clobber_freed for arenas of 1 and 2 MiB (execution.cpp),
// so nothing happens that the program did not ask for.
struct HeapConfig {
  unsigned procs = 1;  // 1..8
  FlushPolicy flush = FlushPolicy::lazy;
  unsigned gc_percent = 0;        // 0 = cycles only when the program asks (no pacing)
  unsigned arena_mib = 1;         // Options::arena_bytes in MiB, 1..4
  bool fake_os = false;           // testing::FakeOsMemory (failure injection) as the OS
  unsigned memory_limit_mib = 0;  // Options::memory_limit in MiB; 0 = none
  // Options::reuse. next_cycle unless the input sets its header bit, so inputs written before the
  // bit existed keep their meaning.
  ReusePolicy reuse = ReusePolicy::next_cycle;
  bool operator==(const HeapConfig&) const = default;
};

// --- Operations --------------------------------------------------------------------------------
// `pick` chooses an object of the shadow model at run time: live[pick % live.size()] in allocation
// order (or a freed one, for the bad-free kinds that need it). Operations whose pick finds nothing
// to act on are no-ops, so every program is runnable.

struct Alloc {  // allocate, then fill the object with its content pattern
  unsigned proc = via_heap;
  std::size_t size = 16;
  std::size_t align = 16;
  bool operator==(const Alloc&) const = default;
};
struct Free {  // free a live object, through any P (not necessarily the one that allocated it)
  unsigned proc = via_heap;
  unsigned pick = 0;
  bool operator==(const Free&) const = default;
};
struct Refill {  // rewrite a live object's contents with a fresh pattern
  unsigned pick = 0;
  bool operator==(const Refill&) const = default;
};
struct Check {  // check one live object in full: contents, usable_size, owns, find_object
  unsigned pick = 0;
  bool operator==(const Check&) const = default;
};
struct Collect {  // Heap::collect(): a whole cycle, then verify()
  bool operator==(const Collect&) const = default;
};
struct BeginCycle {  // testing::begin_cycle: STW, sweepgen += 2, stale caches left for lazy flush
  bool operator==(const BeginCycle&) const = default;
};
struct RaggedBarrier {  // testing::ragged_barrier: flush every idle stale P
  bool operator==(const RaggedBarrier&) const = default;
};
struct FlushIdle {  // testing::flush_idle(i)
  unsigned proc = 0;
  bool operator==(const FlushIdle&) const = default;
};
struct FlushAll {  // testing::flush_all: STW flush of every cache (Go's flushallmcaches)
  bool operator==(const FlushAll&) const = default;
};
struct Wake {  // Proc::wake(): acquire and release the P, flushing it if stale
  unsigned proc = 0;
  bool operator==(const Wake&) const = default;
};
struct SweepOne {  // Heap::sweep_one()
  bool operator==(const SweepOne&) const = default;
};
struct ProportionalSweep {  // testing::proportional_sweep(bytes)
  std::size_t bytes = 0;
  bool operator==(const ProportionalSweep&) const = default;
};
struct Verify {  // Heap::verify() plus a full shadow-model check
  bool operator==(const Verify&) const = default;
};

// Bad frees and misuse (target bad_free). Each one must produce exactly one report of the kind
// the model predicts and change nothing else.
enum class BadKind : std::uint8_t {
  interior,          // live object + offset in [1, size)            -> interior_free
  double_pending,    // an object freed earlier, still pending        -> double_free
  double_reclaimed,  // an object freed and since reclaimed           -> double_free / per model
  foreign,           // a pointer no heap owns (a static buffer)      -> foreign_free
  other_heap,        // an object of a second heap                    -> misuse
  span_tail,         // past the last object of a span with tail waste -> invalid_free
  usable_interior,   // usable_size(live + offset)                   -> misuse, returns 0
  // Decoded from the two double frees with bit 15 of the offset set (so the kinds above keep
  // their byte values): a pointer inside a freed object, after its free.
  pending_interior,    // inside an object still pending -> interior_free, or invalid_free
                       // once the free's own sweep reclaims it (per model)
  reclaimed_interior,  // inside a reclaimed object      -> invalid_free / double_free (per model)
};
// The kinds an input's kind byte selects (mod this); the interior ones come from the offset.
inline constexpr unsigned bad_kind_count = 7;
inline constexpr unsigned freed_interior_bit = 0x8000;
const char* to_string(BadKind kind) noexcept;

struct BadFree {
  BadKind kind = BadKind::interior;
  unsigned proc = via_heap;
  unsigned pick = 0;
  std::size_t offset = 1;
  bool operator==(const BadFree&) const = default;
};
struct BadAlloc {  // size beyond max_alloc_size (size_overflow) or a bad alignment (bad_alignment)
  unsigned proc = via_heap;
  std::size_t size = 0;
  std::size_t align = 16;
  bool operator==(const BadAlloc&) const = default;
};

// OS failure injection (target page_heap; needs HeapConfig::fake_os).
enum class OsFault : std::uint8_t { fail_reserves, fail_commits, cap_committed };
const char* to_string(OsFault fault) noexcept;
struct FailOs {
  OsFault fault = OsFault::fail_commits;
  unsigned n = 1;  // calls to fail, or the cap in units of 256 KiB (0 = no cap)
  bool operator==(const FailOs&) const = default;
};

// One size-class query (target size_classes; needs no heap).
struct SizeQuery {
  std::size_t size = 0;
  std::size_t align = 16;
  bool operator==(const SizeQuery&) const = default;
};

// One evaluation of the pacer's arithmetic (target pacing; needs no heap): the plan a cycle's
// bump makes from these numbers, and the pages proportional sweep owes after `allocated` bytes.
struct PacingQuery {
  std::uint64_t survivors = 0;
  unsigned gc_percent = 100;
  std::uint64_t memory_limit = 0;
  std::uint64_t committed = 0;
  std::uint64_t pages_to_sweep = 0;
  std::uint64_t allocated = 0;
  bool operator==(const PacingQuery&) const = default;
};

// Test-only: scribble over a live object's memory. No target decodes it; the program tests use it
// to prove that the contents oracle fails.
struct Corrupt {
  unsigned pick = 0;
  bool operator==(const Corrupt&) const = default;
};

using Op = std::variant<Alloc, Free, Refill, Check, Collect, BeginCycle, RaggedBarrier, FlushIdle,
                        FlushAll, Wake, SweepOne, ProportionalSweep, Verify, BadFree, BadAlloc,
                        FailOs, SizeQuery, PacingQuery, Corrupt>;

// op_index<T>: the index of operation type T in Op (opcode tables, traces); op_is<T>(op): a
// compare of op.index() with that constant (the oracle asks it several times per step, and
// std::holds_alternative stayed an out-of-line call in the instrumented builds).
template <class T, class V>
struct OpIndexOf;
template <class T, class... Ts>
struct OpIndexOf<T, std::variant<Ts...>> {
  static constexpr std::size_t value = [] {
    constexpr bool match[] = {std::is_same_v<T, Ts>...};
    for (std::size_t i = 0; i < sizeof...(Ts); ++i) {
      if (match[i]) return i;
    }
    return sizeof...(Ts);
  }();
  static_assert(value < sizeof...(Ts), "not an operation type");
};
template <class T>
inline constexpr std::size_t op_index = OpIndexOf<T, Op>::value;
template <class T>
inline bool op_is(const Op& op) noexcept {
  return op.index() == op_index<T>;
}

struct Program {
  Target target = Target::alloc_free;
  HeapConfig config;
  std::vector<Op> ops;
  bool operator==(const Program&) const = default;
};

// Bounds on one program, so that one execution does bounded work (docs/fuzzing.md "Speed"):
// at most max_ops operations, and at most max_boundaries of the operations that end in a
// whole-heap check (is_boundary: a cycle, the ragged barrier, flush_all, Verify), each of which
// costs a heap.verify() and a pass over every live object. A boundary operation past the limit
// decodes as nothing (its byte is consumed), so the rest of the input still counts.
inline constexpr std::size_t max_ops = 128;
inline constexpr std::size_t max_boundaries = 10;
// The longest input the engines are given (libFuzzer -max_len in ci/fuzz and the ctest smoke);
// every generated seed fits in it, so no seed is cut short when it is loaded.
inline constexpr std::size_t max_input_bytes = 256;
bool is_boundary(const Op& op) noexcept;

// Decodes any byte string (never fails; see byte_reader.hpp).
Program decode(Target target, std::span<const std::uint8_t> bytes);
// The inverse: bytes that decode() turns back into `program`. nullopt when the program holds an
// operation its target cannot decode (e.g. Corrupt), or a value no encoding reaches.
std::optional<std::vector<std::uint8_t>> encode(const Program& program);

// --- Printing (printer.cpp) ---------------------------------------------------------------------
// One operation as a trace line fragment, e.g. "P1.allocate(size=48, align=16)".
std::string describe(const Op& op);
// The whole program, one numbered line per operation, preceded by the heap options.
std::string to_trace(const Program& program);
// The heap options in one line ("procs=2 flush=lazy ... memory_limit=0MiB"), or "no heap" for
// the targets that test pure functions.
std::string describe_config(const Program& program);
// The program as C++ (designated initializers), an expression of type Program.
std::string to_cpp(const Program& program);
// A GoogleTest case running the program through run() (paste into fuzz/regressions/*_test.cpp).
std::string to_gtest(const Program& program, std::string_view test_name);

}  // namespace spanheap::fuzz
