// The layout shared by decoding (program.cpp) and encoding (encode.cpp): each target's operation
// table, which targets name Ps, the size classes that sizes are read relative to, and the constants
// of the size fields. Internal to the program library.
#pragma once

#include <spanheap/testing.hpp>

#include <array>
#include <cstddef>
#include <vector>

#include "program.hpp"

namespace spanheap::fuzz::codec {

// Each target's operation mix: the low 4 bits of an opcode byte index its table, so the weights
// are the number of entries (alloc_free allocates 5/16 of the time). The upper bits are ignored.
using OpTable = std::array<std::size_t, 16>;
// The table of a target with one operation (the pure-function targets).
template <class T>
constexpr OpTable only() {
  OpTable t{};
  t.fill(op_index<T>);
  return t;
}
inline constexpr OpTable alloc_free_ops = {
    op_index<Alloc>,   op_index<Alloc>,    op_index<Alloc>,    op_index<Alloc>,
    op_index<Alloc>,   op_index<Free>,     op_index<Free>,     op_index<Free>,
    op_index<Free>,    op_index<Refill>,   op_index<Check>,    op_index<Collect>,
    op_index<Collect>, op_index<SweepOne>, op_index<SweepOne>, op_index<Verify>};
inline constexpr OpTable procs_interleave_ops = {op_index<Alloc>,      op_index<Alloc>,
                                                 op_index<Alloc>,      op_index<Alloc>,
                                                 op_index<Free>,       op_index<Free>,
                                                 op_index<Free>,       op_index<Wake>,
                                                 op_index<Wake>,       op_index<FlushIdle>,
                                                 op_index<BeginCycle>, op_index<RaggedBarrier>,
                                                 op_index<FlushAll>,   op_index<ProportionalSweep>,
                                                 op_index<SweepOne>,   op_index<Collect>};
inline constexpr OpTable bad_free_ops = {
    op_index<Alloc>,   op_index<Alloc>,      op_index<Alloc>,    op_index<Alloc>,
    op_index<Free>,    op_index<Free>,       op_index<Free>,     op_index<BadFree>,
    op_index<BadFree>, op_index<BadFree>,    op_index<BadFree>,  op_index<BadAlloc>,
    op_index<Collect>, op_index<BeginCycle>, op_index<SweepOne>, op_index<Wake>};
inline constexpr OpTable page_heap_ops = {
    op_index<Alloc>,  op_index<Alloc>,   op_index<Alloc>,   op_index<Alloc>,
    op_index<Alloc>,  op_index<Free>,    op_index<Free>,    op_index<Free>,
    op_index<Free>,   op_index<Collect>, op_index<Collect>, op_index<SweepOne>,
    op_index<FailOs>, op_index<FailOs>,  op_index<Verify>,  op_index<FlushAll>};
inline constexpr OpTable size_classes_ops = only<SizeQuery>();

inline constexpr OpTable pacing_ops = only<PacingQuery>();

inline const OpTable& table(Target target) {
  switch (target) {
    case Target::alloc_free:
      return alloc_free_ops;
    case Target::procs_interleave:
      return procs_interleave_ops;
    case Target::bad_free:
      return bad_free_ops;
    case Target::page_heap:
      return page_heap_ops;
    case Target::size_classes:
      return size_classes_ops;
    case Target::pacing:
      return pacing_ops;
  }
  return alloc_free_ops;
}

// Targets whose operations name an explicit P (a Proc handle), or the facade when the proc byte
// has these bits set (read_proc); the others always go through the facade.
inline constexpr unsigned facade_proc_bits = 0xC0;
inline bool uses_procs(Target target) {
  return target == Target::procs_interleave || target == Target::bad_free;
}

inline const std::vector<std::size_t>& class_sizes() {
  static const std::vector<std::size_t> sizes = [] {
    std::vector<std::size_t> out;
    for (const auto& c : testing::size_classes()) out.push_back(c.size);
    if (out.empty()) out.push_back(16);
    return out;
  }();
  return sizes;
}

// Bad power-of-two alignments are multiples of this: past max_alloc_size, the largest alignment
// allocate() honours.
inline constexpr std::size_t bad_align_unit = max_alloc_size * 2;

// Page-heap sizes: a page count from a u16 whose top 5 bits pick the range: 0-19 (twenty of 32
// values) 1..8 pages, 20-27 1..32 pages, 28-30 1..128 pages (the exact free lists end at 128),
// 31 1..512 pages (up to 4 MiB: past every arena size, and across memory limits and OS caps in a
// few allocations); the low bits give the count within the range, the bits in between are
// ignored. Then a shortfall of up to 4064 bytes (0 when bit 7 of the next byte is set). The mean
// object is 21 pages (33 with 4-bit classes of 16/64/128/512 pages, 64 with 3-bit classes, 256
// with a uniform 1..512): every page of an object costs shadow writes at allocation, free and
// teardown, more objects fit an arena (more neighbours to coalesce), and the big ones are still
// one mutation of the top bits away. 60-s runs from the seed corpus reached the same coverage
// with each step down (docs/fuzzing.md "Speed").
inline constexpr unsigned pages_class_shift = 11;
inline std::size_t pages_range(unsigned range_class) {
  return range_class < 20 ? 8 : range_class < 28 ? 32 : range_class < 31 ? 128 : 512;
}

}  // namespace spanheap::fuzz::codec
