// format: see format.hpp.
#include "format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace spanheap::stress {

std::string human(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string mib(std::size_t b) {
  return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
}

std::string micros(std::uint64_t ns) {
  if (ns >= 10'000'000) return fmt::format("{:.1f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.1f} us", static_cast<double>(ns) / 1e3);
}

std::string histogram_percentile(const Stats& s, double q) {
  std::uint64_t total = 0;
  for (auto c : s.pause_histogram) total += c;
  if (total == 0) return "n/a";
  auto want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  if (want == 0) want = 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < s.pause_histogram.size(); ++i) {
    seen += s.pause_histogram[i];
    if (seen >= want) {
      if (i + 1 == s.pause_histogram.size())
        return fmt::format(">= {} us", std::uint64_t{1} << (i - 1));
      return fmt::format("< {} us", std::uint64_t{1} << i);
    }
  }
  return "n/a";
}

std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  idx = idx == 0 ? 0 : idx - 1;
  return sorted[std::min(idx, sorted.size() - 1)];
}

}  // namespace spanheap::stress
