// size_classes: the table of object sizes (Go's sizeclasses.go), generated at startup by the same
// rule Go's mksizeclasses.go uses, O(1) size -> class lookup, and division by the object size
// without a divide instruction. See docs/design.md §"Size classes".
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "types.hpp"

namespace spanheap::detail {

namespace size_table {

constexpr bool is_pow2(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// The inverse of odd `d` modulo 2^32, by Newton's iteration: d is its own inverse modulo 8, and
// each step doubles the bits that are right (3, 6, 12, 24, 48).
constexpr std::uint32_t inverse_mod_2_32(std::uint32_t d) {
  std::uint32_t x = d;
  for (int i = 0; i < 4; i++) x *= 2 - d * x;
  return x;
}

// The lookup tables: for align ≤ 8, sizes ≤ 1024 are looked up in steps of 8 and larger ones in
// steps of 128 (Go's size_to_class8 / size_to_class128).
inline constexpr std::size_t small_max = 1024;
inline constexpr std::size_t small_step = 8;
inline constexpr std::size_t large_step = 128;

struct Table {
  unsigned count = 0;
  std::array<SizeClass, max_size_classes> classes{};
  std::array<std::uint8_t, small_max / small_step + 1> by8{};
  std::array<std::uint8_t, (max_small_size - small_max) / large_step + 1> by128{};
  // next16[c]: the first class ≥ c whose size is a multiple of 16 (the default alignment).
  std::array<std::uint8_t, max_size_classes> next16{};
  // by_size[size]: the class of a size ≤ small_max at the default alignment, in one load indexed
  // by the size itself (the allocation fast path's lookup). A byte a size, 1 KiB, where a byte a
  // 16 B step was 65 bytes: the step's rounding (an add and a shift) cost every allocation two
  // instructions, and the table's lines that a program's sizes touch stay cached.
  std::array<std::uint8_t, small_max + 1> by_size{};
};

// A class of at most small_max bytes gets spans of at least this many objects (up to
// max_grown_span bytes). Go's rule alone gives a 512-byte class 16 slots in 8 KiB: a free then
// reads one Span header per 8 KiB of objects (a 17 MiB heap had ~2,100 headers, far more than L1
// holds, and loading the header was 40 % of free's samples), and a collection at a quarter of the
// slots reclaims four objects, so one allocation of the class in four took the slow path. 128
// rather than 64 halves the collections and refills of a churn (churn 1t: 129 -> 123 instructions
// an op for the whole process), for no measured peak RSS (docs/performance.md).
inline constexpr std::size_t min_span_slots = 128;
// A larger class gets spans of at least this many objects, within the same bound. Go's rule gives
// a 2 KiB class 4 slots and an 8 KiB class one, so a churn of such objects collected or refilled
// its span every one to four allocations (sizes/1024-8192: 316 instructions an op for the whole
// process, 224 with these spans, mimalloc 234; its pages for such sizes are 64 KiB too). The cost:
// a span returns to the page heap only when all its objects are freed, so a few long-lived ones
// can hold up to 64 KiB where they held 8-32.
inline constexpr std::size_t min_medium_span_slots = 8;
inline constexpr std::size_t max_grown_span = 8 * page_size;

// Go's rule: walk sizes in steps of `align` (8, then 16 from 32 B, then size/8 from 128 B, then
// 256 from 2 KiB); give each the fewest pages for which the span's tail waste is at most 1/8 of
// the span, then grow spans toward min_span_slots (min_medium_span_slots above small_max) by the
// same waste rule while a page more stays within max_grown_span (the waste rule may then add
// pages past it, as Go's own spans for some sizes are); merge a
// size into the previous class when both use the same pages for the same count.
constexpr Table generate() {
  Table t;
  t.classes[0] = SizeClass{0, 0, 0, 0, 0, 0};
  t.count = 1;
  std::size_t align = 8;
  for (std::size_t size = align; size <= max_small_size; size += align) {
    if (is_pow2(size)) {
      if (size >= 2048) {
        align = 256;
      } else if (size >= 128) {
        align = size / 8;
      } else if (size >= 32) {
        align = 16;
      }
    }
    std::size_t alloc = page_size;
    while (alloc % size > alloc / 8) alloc += page_size;
    const std::size_t want = size <= small_max ? min_span_slots : min_medium_span_slots;
    while (alloc / size < want && alloc + page_size <= max_grown_span) {
      alloc += page_size;
      while (alloc % size > alloc / 8) alloc += page_size;
    }
    const auto npages = static_cast<std::uint32_t>(alloc / page_size);
    const auto nelems = static_cast<std::uint32_t>(alloc / size);
    SizeClass& prev = t.classes[t.count - 1];
    if (t.count > 1 && prev.npages == npages && prev.nelems == nelems) {
      prev.size = static_cast<std::uint32_t>(size);
      continue;
    }
    t.classes[t.count++] = SizeClass{static_cast<std::uint32_t>(size), npages, nelems, 0, 0, 0};
  }
  for (unsigned c = 1; c < t.count; c++) {
    SizeClass& sc = t.classes[c];
    sc.nelems = static_cast<std::uint32_t>((std::size_t{sc.npages} * page_size) / sc.size);
    // Go's divMul: ceil(2^32 / size); exact for every offset below the span size (checked by
    // size_classes_test and the size_classes property tests).
    sc.div_mul = static_cast<std::uint32_t>(0xFFFFFFFFu / sc.size + 1);
    sc.slot_shift = static_cast<std::uint8_t>(std::countr_zero(sc.size));
    sc.slot_inv = inverse_mod_2_32(sc.size >> sc.slot_shift);
  }
  unsigned c = 1;
  for (std::size_t i = 0; i < t.by8.size(); i++) {
    const std::size_t size = i * small_step;
    while (c < t.count && t.classes[c].size < size) c++;
    t.by8[i] = static_cast<std::uint8_t>(c);
  }
  for (std::size_t i = 0; i < t.by128.size(); i++) {
    const std::size_t size = small_max + i * large_step;
    while (c < t.count && t.classes[c].size < size) c++;
    t.by128[i] = static_cast<std::uint8_t>(c < t.count ? c : 0);
  }
  for (unsigned k = 0; k < max_size_classes; k++) {
    unsigned n = k;
    while (n != 0 && n < t.count && t.classes[n].size % 16 != 0) n++;
    t.next16[k] = static_cast<std::uint8_t>(n < t.count ? n : 0);
  }
  for (std::size_t size = 0; size < t.by_size.size(); size++)
    t.by_size[size] =
        t.next16[t.by8[(std::max<std::size_t>(size, 1) + small_step - 1) / small_step]];
  return t;
}

inline constexpr Table table = generate();
static_assert(table.count > 60 && table.count < max_size_classes, "unexpected class count");
static_assert(table.classes[table.count - 1].size == max_small_size);
static_assert(table.classes[1].size == 8);

constexpr bool nelems_fit() {
  for (unsigned c = 1; c < table.count; c++)
    if (table.classes[c].nelems > max_nelems) return false;
  return true;
}
static_assert(nelems_fit(), "bitmaps are sized for max_nelems slots");

// object_slot's premises (span.hpp): every class's slot_inv inverts its size's odd part, and a
// span's bytes fit the 32-bit offset it multiplies.
constexpr bool slot_inverses_hold() {
  for (unsigned c = 1; c < table.count; c++) {
    const SizeClass& sc = table.classes[c];
    if (sc.size >> sc.slot_shift << sc.slot_shift != sc.size || (sc.size >> sc.slot_shift) % 2 == 0)
      return false;
    if ((sc.size >> sc.slot_shift) * sc.slot_inv != 1) return false;
    if (std::uint64_t{sc.npages} * page_size > 0xFFFFFFFFu) return false;
  }
  return true;
}
static_assert(slot_inverses_hold(), "object_slot needs each class's odd inverse");

}  // namespace size_table

// Number of classes including class 0 (large).
inline unsigned num_size_classes() noexcept { return size_table::table.count; }
inline const SizeClass& size_class(unsigned c) noexcept { return size_table::table.classes[c]; }

// The smallest class whose size is ≥ size and a multiple of align (so every object of the class
// is aligned: spans start on a page boundary). 0 when the request must be a large object.
// Requires: align is a power of two; alignments above page_size cannot be honoured by any class
// (spans are only page aligned) and get 0.
inline unsigned size_to_class(std::size_t size, std::size_t align) noexcept {
  using namespace size_table;
  if (size == 0) size = 1;
  if (size > max_small_size || align > page_size) return 0;
  unsigned c = size <= small_max ? table.by8[(size + small_step - 1) / small_step]
                                 : table.by128[(size - small_max + large_step - 1) / large_step];
  if (align <= 8) return c;
  if (SPANHEAP_LIKELY(align == 16)) return table.next16[c];
  while (c != 0 && c < table.count && table.classes[c].size % align != 0) c++;
  return c < table.count ? c : 0;
}

// size_to_class(size, 16) for size ≤ small_max: the allocation fast path.
inline unsigned size_to_class16(std::size_t size) noexcept {
  return size_table::table.by_size[size];
}

// Slot index of byte `offset` within a span of class c (offset < npages * page_size).
inline std::uint32_t object_index(std::uintptr_t offset, const SizeClass& sc) noexcept {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(offset) * sc.div_mul) >> 32);
}

}  // namespace spanheap::detail
