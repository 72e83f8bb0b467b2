// rng: the toolkit's one source of seeded randomness (docs/design.md "The oracle library").
// splitmix64 turns any seed into well-mixed words; xoshiro256** seeded through it draws the
// streams. Everything is inline: the fuzzers' content seeds and the stress drivers' size draws sit
// on their hot paths, and the benchmarks use it without linking the oracle.
#pragma once

#include <cstdint>

namespace spanheap::oracle {

// The golden-ratio increment of splitmix64 (also the content pattern's word stride).
inline constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ull;

// One splitmix64 step: advances `state` and returns the next word.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += golden);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A stateless hash of `x` (splitmix64 from state x): successive values give unrelated words.
constexpr std::uint64_t mix(std::uint64_t x) noexcept { return splitmix64(x); }

// xoshiro256**: one stream per (seed, stream), so threads or rounds drawing from the same seed
// never share a sequence.
class Rng {
 public:
  explicit constexpr Rng(std::uint64_t seed, std::uint64_t stream = 0) noexcept {
    std::uint64_t st = seed ^ (stream * 0xd1342543de82ef95ull + 0x632be59bd9b4e019ull);
    for (auto& s : s_) s = splitmix64(st);
  }
  constexpr std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n); n > 0. (The modulo bias is below 2^-40 for the ranges the toolkit draws.)
  constexpr std::uint64_t below(std::uint64_t n) noexcept { return next() % n; }
  // Uniform in [lo, hi].
  constexpr std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept {
    return lo + below(hi - lo + 1);
  }
  // True with probability num/den.
  constexpr bool chance(std::uint64_t num, std::uint64_t den) noexcept { return below(den) < num; }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }
  std::uint64_t s_[4] = {};
};

}  // namespace spanheap::oracle
