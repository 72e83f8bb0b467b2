// Content cookies (see content.hpp): the oracle library's content pattern plus the header that
// lets a driver hand an object to another thread as a bare pointer.
#include "content.hpp"

#include "harness.hpp"

#include <fmt/format.h>
#include <spanheap/oracle/content.hpp>

#include <cstring>

namespace spanheap::stress {
namespace {

// A transferable object's header: word 0 is the pattern's own first word (the key itself) and
// word 1 is the pattern's second word with the size folded in, so a bare pointer is enough to
// rebuild the record and everything else is the oracle's content pattern.
constexpr std::size_t header_bytes = 16;

std::uint64_t load(const std::byte* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

std::uint64_t size_word(std::uint64_t key, std::size_t size) {
  return oracle::pattern_word(key, 1) ^ size;
}

std::byte* bytes(const Obj& o) { return static_cast<std::byte*>(o.p); }

bool mismatch(const Obj& o, std::size_t from, std::string* why) {
  if (from >= o.size) return false;
  const auto bad = oracle::find_mismatch(bytes(o), o.key, from, o.size - from);
  if (!bad) return false;
  *why =
      fmt::format("content mismatch in {} at byte {}: got {:#04x}, want {:#04x}", describe(o), *bad,
                  static_cast<unsigned>(bytes(o)[*bad]), oracle::pattern_byte(o.key, *bad));
  return true;
}

}  // namespace

void fill(const Obj& o) {
  oracle::write_pattern(bytes(o), o.key, 0, o.size);
  if (o.size >= header_bytes) {
    const std::uint64_t w = size_word(o.key, o.size);
    std::memcpy(bytes(o) + 8, &w, sizeof w);
  }
}

bool check(const Obj& o, std::string* why) {
  if (o.size < header_bytes) return !mismatch(o, 0, why);
  if (oracle::find_mismatch(bytes(o), o.key, 0, 8)) return !mismatch(o, 0, why);
  if (const std::uint64_t got = load(bytes(o) + 8); got != size_word(o.key, o.size)) {
    *why = fmt::format("content mismatch in {} at its size word: got {:#018x}, want {:#018x}",
                       describe(o), got, size_word(o.key, o.size));
    return false;
  }
  return !mismatch(o, header_bytes, why);
}

bool from_header(void* p, Obj* out, std::string* why) {
  const auto* b = static_cast<const std::byte*>(p);
  const std::uint64_t key = load(b);
  const std::uint64_t size = load(b + 8) ^ oracle::pattern_word(key, 1);
  if (key == 0 || size < min_transfer_size || size > max_alloc_size) {
    *why = fmt::format("damaged header of transferred object {}: key {:#018x}, decoded size {}", p,
                       key, size);
    return false;
  }
  out->p = p;
  out->key = key;
  out->size = static_cast<std::size_t>(size);
  out->align = 16;
  return true;
}

std::uint64_t make_key(Rng& rng, const void* p) {
  std::uint64_t k = rng.next() ^ (reinterpret_cast<std::uintptr_t>(p) * 0xD6E8FEB86659FD93ull);
  return k == 0 ? 1 : k;
}

std::size_t draw_size(Rng& rng, std::size_t max_large, unsigned large_per_mille) {
  std::uint64_t r = rng.below(1000);
  if (r < large_per_mille && max_large > max_small_size) {
    return static_cast<std::size_t>(rng.between(max_small_size + 1, max_large));
  }
  if (r < large_per_mille + 5) return static_cast<std::size_t>(rng.below(16));  // zero and tiny
  // Power-of-two bucket up to 32 KiB, weighted towards small sizes (each bucket equally likely
  // among 4..15, so every class sees traffic), then uniform inside the bucket.
  unsigned k = static_cast<unsigned>(rng.between(4, 15));
  if (k >= 13 && rng.chance(2, 3)) k = static_cast<unsigned>(rng.between(4, 12));
  std::size_t hi = std::size_t{1} << k;
  return static_cast<std::size_t>(rng.between(hi / 2 + 1, hi));
}

std::size_t draw_align(Rng& rng) {
  if (!rng.chance(1, 20)) return 16;
  return std::size_t{1} << rng.between(4, 13);  // 16 .. page_size (8 KiB)
}

std::string describe(const Obj& o) {
  return fmt::format("object {} (size {}, align {}, key {:#018x})", o.p, o.size, o.align, o.key);
}

}  // namespace spanheap::stress
