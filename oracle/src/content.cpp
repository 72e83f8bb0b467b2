// content: see content.hpp.
#include <spanheap/oracle/content.hpp>

#include <cstring>

namespace spanheap::oracle {

void write_pattern(std::byte* p, std::uint64_t seed, std::size_t from, std::size_t len) noexcept {
  std::size_t o = from;
  const std::size_t end = from + len;
  for (; o < end && o % 8 != 0; ++o) p[o] = std::byte{pattern_byte(seed, o)};
  for (; o + 8 <= end; o += 8) {
    const std::uint64_t w = pattern_word(seed, o / 8);
    std::memcpy(p + o, &w, 8);  // little-endian: byte k of w is pattern_byte(seed, o + k)
  }
  for (; o < end; ++o) p[o] = std::byte{pattern_byte(seed, o)};
}

// Word-wise: one load and compare per aligned word, bytes only at unaligned ends; the first
// differing byte is looked for only once a difference is known.
std::optional<std::size_t> find_mismatch(const std::byte* p, std::uint64_t seed, std::size_t from,
                                         std::size_t len) noexcept {
  std::size_t o = from;
  const std::size_t end = from + len;
  for (; o < end && o % 8 != 0; ++o) {
    if (p[o] != std::byte{pattern_byte(seed, o)}) return o;
  }
  std::uint64_t diff = 0;
  const std::size_t words_from = o;
  for (; o + 8 <= end; o += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + o, 8);
    diff |= w ^ pattern_word(seed, o / 8);
  }
  if (diff != 0) {
    for (std::size_t b = words_from; b < o; ++b) {
      if (p[b] != std::byte{pattern_byte(seed, b)}) return b;
    }
  }
  for (; o < end; ++o) {
    if (p[o] != std::byte{pattern_byte(seed, o)}) return o;
  }
  return std::nullopt;
}

}  // namespace spanheap::oracle
