// Content cookies (see content.hpp).
#include "content.hpp"

#include "harness.hpp"

#include <fmt/format.h>

#include <cstring>

namespace spanheap::stress {
namespace {

constexpr std::uint64_t size_mul = 0x9E3779B97F4A7C15ull;

std::uint8_t tail_byte(std::uint64_t key, std::size_t i) {
  return static_cast<std::uint8_t>((key >> ((i % 8) * 8)) ^ (i * 0x5Bu));
}

std::uint64_t load(const unsigned char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

void store(unsigned char* p, std::uint64_t w) { std::memcpy(p, &w, sizeof w); }

std::uint64_t expected_word(const Obj& o, std::size_t i) {
  if (i == 0) return o.key;
  if (i == 1) return o.size ^ (o.key * size_mul);
  return i ^ o.key;
}

}  // namespace

void fill(const Obj& o) {
  auto* b = static_cast<unsigned char*>(o.p);
  std::size_t words = o.size / 8;
  for (std::size_t i = 0; i < words; ++i) store(b + i * 8, expected_word(o, i));
  for (std::size_t i = words * 8; i < o.size; ++i) b[i] = tail_byte(o.key, i);
}

bool check(const Obj& o, std::string* why) {
  const auto* b = static_cast<const unsigned char*>(o.p);
  std::size_t words = o.size / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t got = load(b + i * 8);
    std::uint64_t want = expected_word(o, i);
    if (got != want) {
      *why = fmt::format(
          "content mismatch in {} at word {} (byte offset {}): got {:#018x}, want {:#018x}",
          describe(o), i, i * 8, got, want);
      return false;
    }
  }
  for (std::size_t i = words * 8; i < o.size; ++i) {
    if (b[i] != tail_byte(o.key, i)) {
      *why = fmt::format("content mismatch in {} at byte {}: got {:#04x}, want {:#04x}",
                         describe(o), i, b[i], tail_byte(o.key, i));
      return false;
    }
  }
  return true;
}

bool from_header(void* p, Obj* out, std::string* why) {
  const auto* b = static_cast<const unsigned char*>(p);
  std::uint64_t key = load(b);
  std::uint64_t size = load(b + 8) ^ (key * size_mul);
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
