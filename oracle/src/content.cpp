// content: see content.hpp.
#include <spanheap/oracle/content.hpp>

#include <cstring>

namespace spanheap::oracle {
namespace {

// Whole words go a block at a time through a local array and one fixed-size copy. The toolkit
// runs with UBSan, which checks every pointer addition for overflow: one `p + o` per word kept
// these loops scalar at four times the instructions, and they run for every sampled region of
// every live object at every boundary. 16 words is the largest copy the compiler inlines (a call
// would go through ASan's memcpy interceptor and its range checks).
constexpr std::size_t block_words = 16;
constexpr std::size_t block_bytes = block_words * 8;

}  // namespace

void write_pattern(std::byte* p, std::uint64_t seed, std::size_t from, std::size_t len) noexcept {
  std::size_t o = from;
  const std::size_t end = from + len;
  for (; o < end && o % 8 != 0; ++o) p[o] = std::byte{pattern_byte(seed, o)};
  for (; o + block_bytes <= end; o += block_bytes) {
    std::uint64_t w[block_words];
    for (std::size_t k = 0; k < block_words; ++k) w[k] = pattern_word(seed, o / 8 + k);
    std::memcpy(p + o, w, block_bytes);  // little-endian: byte k of a word is pattern_byte
  }
  for (; o + 8 <= end; o += 8) {
    const std::uint64_t w = pattern_word(seed, o / 8);
    std::memcpy(p + o, &w, 8);
  }
  for (; o < end; ++o) p[o] = std::byte{pattern_byte(seed, o)};
}

// Word-wise: every aligned word is loaded and compared (a block at a time, as above), bytes only
// at unaligned ends; the first differing byte is looked for only once a difference is known.
std::optional<std::size_t> find_mismatch(const std::byte* p, std::uint64_t seed, std::size_t from,
                                         std::size_t len) noexcept {
  std::size_t o = from;
  const std::size_t end = from + len;
  for (; o < end && o % 8 != 0; ++o) {
    if (p[o] != std::byte{pattern_byte(seed, o)}) return o;
  }
  std::uint64_t diff = 0;
  const std::size_t words_from = o;
  for (; o + block_bytes <= end; o += block_bytes) {
    std::uint64_t w[block_words];
    std::memcpy(w, p + o, block_bytes);
    for (std::size_t k = 0; k < block_words; ++k) diff |= w[k] ^ pattern_word(seed, o / 8 + k);
  }
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
