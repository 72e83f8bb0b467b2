// bench/driver.hpp: what the whole-program benchmark drivers (pause_scaling, sweep_split) share:
// the command line (--smoke, --seed, --seconds, --csv and driver flags), a clock, percentiles,
// and the failure path that prints the exact repro line. See docs/performance.md.
#pragma once

#include <fmt/core.h>
#include <spanheap/version.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace spanheap::bench {

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// The q-quantile (0..1) of `v` by nearest rank; 0 for an empty sample.
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size()) + 0.5);
  if (rank > 0) rank--;
  return v[std::min(rank, v.size() - 1)];
}

struct DriverArgs {
  bool smoke = false;
  std::uint64_t seed = 1;
  double seconds = 0;                        // 0 = the driver's default budget
  std::string csv;                           // write the results as CSV here too
  std::map<std::string, std::string> flags;  // driver-specific --name value pairs
  std::string command;                       // the whole command line, for repro lines
};

// Parses argv. `known` lists the driver's own value flags (without the leading dashes).
inline DriverArgs parse_args(int argc, char** argv, const std::vector<std::string>& known,
                             const char* usage) {
  if (spanheap::print_version_if_asked(argc, argv)) std::exit(0);
  DriverArgs a;
  for (int i = 0; i < argc; i++) a.command += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; i++) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n{}", f, usage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (f == "--smoke") {
      a.smoke = true;
    } else if (f == "--seed") {
      a.seed = std::strtoull(value().c_str(), nullptr, 10);
    } else if (f == "--seconds") {
      a.seconds = std::strtod(value().c_str(), nullptr);
    } else if (f == "--csv") {
      a.csv = value();
    } else if (f == "-h" || f == "--help") {
      fmt::print("{}", usage);
      std::exit(0);
    } else if (f.size() > 2 && f.rfind("--", 0) == 0 &&
               std::find(known.begin(), known.end(), f.substr(2)) != known.end()) {
      a.flags[f.substr(2)] = value();
    } else {
      fmt::print(stderr, "unknown argument '{}'\n{}", f, usage);
      std::exit(2);
    }
  }
  return a;
}

// "1,2,4" -> {1, 2, 4}
inline std::vector<unsigned> parse_list(const std::string& s) {
  std::vector<unsigned> v;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    v.push_back(static_cast<unsigned>(std::strtoul(s.substr(pos, end - pos).c_str(), nullptr, 10)));
    pos = end + 1;
  }
  return v;
}

// A measurement that does not measure what it claims is a failed run: say why, print the repro
// line and exit non-zero.
[[noreturn]] inline void fail(const DriverArgs& a, const std::string& why) {
  fmt::print(stderr, "FAIL: {}\nrepro: {}\n", why, a.command);
  std::fflush(stderr);
  std::exit(1);
}

}  // namespace spanheap::bench
