// content: the one content pattern the toolkit writes into live objects and checks later
// (docs/design.md "The oracle library"). Word i of an object with seed s is s ^ (i * golden) and
// byte o is byte (o % 8) of word o / 8: one multiply per word, position-dependent (a shifted or
// swapped copy does not match) and distinct per object (seeds come from mix() or an Rng). A slot
// handed out twice, a write into a live object by the heap, or memory reused before its free
// shows up as a mismatch at a known offset.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "rng.hpp"

namespace spanheap::oracle {

inline std::uint64_t pattern_word(std::uint64_t seed, std::size_t i) noexcept {
  return seed ^ (i * golden);
}

inline std::uint8_t pattern_byte(std::uint64_t seed, std::size_t offset) noexcept {
  return static_cast<std::uint8_t>(pattern_word(seed, offset / 8) >> (8 * (offset % 8)));
}

// Writes the pattern of `seed` into [from, from + len) of the object at `p`.
void write_pattern(std::byte* p, std::uint64_t seed, std::size_t from, std::size_t len) noexcept;

// The first offset in [from, from + len) that does not hold the pattern, or nullopt.
std::optional<std::size_t> find_mismatch(const std::byte* p, std::uint64_t seed, std::size_t from,
                                         std::size_t len) noexcept;

// The regions of an object of `size` bytes that a sampling oracle writes and checks, as
// fn(from, len): objects up to 512 bytes whole; larger ones the first and last 256 bytes and one
// word every 64 KiB (at most 16 of them). An 8 KiB object costs 64 words, a 64 MiB one 80, and a
// fresh large object faults in a few of its pages, not all. A slot reclaimed too early is
// clobbered whole (debug.clobber_freed) or handed out again (the overlap check), so samples at
// both ends and across the middle see it.
template <class Fn>
void for_each_sampled_region(std::size_t size, Fn&& fn) {
  constexpr std::size_t whole = 512, edge = 256, min_stride = 65536, max_samples = 16;
  if (size <= whole) {
    fn(std::size_t{0}, size);
    return;
  }
  const std::size_t stride = std::max(min_stride, (size / max_samples + 7) & ~std::size_t{7});
  fn(std::size_t{0}, edge);
  for (std::size_t o = stride; o + 8 <= size - edge; o += stride) fn(o, std::size_t{8});
  fn(size - edge, edge);
}

}  // namespace spanheap::oracle
