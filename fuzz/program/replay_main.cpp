// The replay driver: main() of every fuzz target in the replay build (fuzz_target.hpp).
//
//   <target>_fuzzer FILE|DIR...                 replay inputs (what ctest runs over corpus and
//                                               regressions); a failure prints the repro line
//   <target>_fuzzer --print FILE                decode and print the program (no heap)
//   <target>_fuzzer --trace FILE                run it and print every executed step
//   <target>_fuzzer --gtest NAME FILE           print the program as a GoogleTest case
//   <target>_fuzzer --smoke [--seed N] [--seconds S] [--max-len L] [DIR...]
//                                               seeded random self-fuzz: fresh random inputs and
//                                               mutations of the inputs in DIR (ctest smoke)
#include <fmt/format.h>
#include <spanheap/oracle/rng.hpp>
#include <spanheap/version.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_target.hpp"

namespace spanheap::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Files named on the command line, and the regular files inside named directories (sorted, so
// replay order is stable). README files are documentation, not inputs.
std::vector<fs::path> collect_inputs(const std::vector<std::string>& args) {
  std::vector<fs::path> out;
  for (const auto& a : args) {
    const fs::path p(a);
    if (fs::is_directory(p)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(p)) {
        const std::string name = e.path().filename().string();
        if (e.is_regular_file() && name.rfind("README", 0) != 0 && name[0] != '.')
          files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else if (fs::exists(p)) {
      out.push_back(p);
    } else {
      fmt::print(stderr, "no such file or directory: {}\n", a);
      std::exit(2);
    }
  }
  return out;
}

int usage(const char* argv0) {
  fmt::print(stderr,
             "usage: {0} FILE|DIR...                 replay inputs\n"
             "       {0} --print FILE                print the decoded program\n"
             "       {0} --trace FILE                run and print every executed step\n"
             "       {0} --gtest NAME FILE           print the program as a GoogleTest case\n"
             "       {0} --smoke [--seed N] [--seconds S] [--max-len L] [DIR...]\n",
             argv0);
  return 2;
}

int smoke(Target target, std::uint64_t seed, double seconds, std::size_t max_len,
          const std::vector<std::string>& dirs) {
  std::vector<std::vector<std::uint8_t>> seeds;
  for (const auto& p : collect_inputs(dirs)) seeds.push_back(read_file(p));
  oracle::Rng rng{seed};  // the smoke loop must be reproducible from --seed alone
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::uint64_t execs = 0;
  std::vector<std::uint8_t> input;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int burst = 0; burst < 16; ++burst) {
      if (!seeds.empty() && rng.below(2) == 0) {
        // Mutate a seed: flip bytes, overwrite a run, truncate or splice another seed's tail.
        input = seeds[rng.below(seeds.size())];
        const std::size_t edits = 1 + rng.below(8);
        for (std::size_t e = 0; e < edits && !input.empty(); ++e) {
          switch (rng.below(4)) {
            case 0:
              input[rng.below(input.size())] ^= static_cast<std::uint8_t>(1u << rng.below(8));
              break;
            case 1:
              input[rng.below(input.size())] = static_cast<std::uint8_t>(rng.next());
              break;
            case 2:
              input.resize(rng.below(input.size() + 1));
              break;
            default: {
              const auto& other = seeds[rng.below(seeds.size())];
              const std::size_t from = rng.below(other.size() + 1);
              input.resize(rng.below(input.size() + 1));
              input.insert(input.end(), other.begin() + static_cast<std::ptrdiff_t>(from),
                           other.end());
            }
          }
        }
        if (input.size() > max_len) input.resize(max_len);
      } else {
        input.resize(rng.below(max_len + 1));
        for (auto& b : input) b = static_cast<std::uint8_t>(rng.next());
      }
      fuzz_one(target, input.data(), input.size());
      ++execs;
    }
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("{} smoke: {} execs in {:.1f} s ({:.0f}/s), seed {}, {} seed inputs, no failure\n",
             to_string(target), execs, took, static_cast<double>(execs) / took, seed, seeds.size());
  return 0;
}

}  // namespace

int replay_main(int argc, char** argv, Target target) {
  if (print_version_if_asked(argc, argv)) return 0;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage(argv[0]);
  const std::string& mode = args[0];
  if (mode == "--help" || mode == "-h") {
    usage(argv[0]);
    return 0;
  }
  if (mode == "--print" || mode == "--trace") {
    if (args.size() != 2) return usage(argv[0]);
    const auto bytes = read_file(args[1]);
    const Program program = decode(target, bytes);
    if (mode == "--print") {
      fmt::print("{}", to_trace(program));
      return 0;
    }
    const Outcome outcome = run(program, RunOptions{.trace = true});
    fmt::print("{}", to_trace(program));
    fmt::print("executed:\n{}", outcome.trace);
    if (outcome.ok) {
      fmt::print("ok: {} steps, every check passed\n", outcome.ops_run);
      return 0;
    }
    fmt::print("FAILED at step {}: {}\n", outcome.step, outcome.failure);
    return 1;
  }
  if (mode == "--gtest") {
    if (args.size() != 3) return usage(argv[0]);
    fmt::print("{}", to_gtest(decode(target, read_file(args[2])), args[1]));
    return 0;
  }
  if (mode == "--smoke") {
    std::uint64_t seed = 1;
    double seconds = 5;
    std::size_t max_len = max_input_bytes;
    std::vector<std::string> dirs;
    for (std::size_t i = 1; i < args.size(); ++i) {
      auto value = [&](const char* flag) -> std::string {
        if (i + 1 >= args.size()) {
          fmt::print(stderr, "{} needs a value\n", flag);
          std::exit(2);
        }
        return args[++i];
      };
      if (args[i] == "--seed") {
        seed = std::stoull(value("--seed"));
      } else if (args[i] == "--seconds") {
        seconds = std::stod(value("--seconds"));
      } else if (args[i] == "--max-len") {
        max_len = std::stoul(value("--max-len"));
      } else {
        dirs.push_back(args[i]);
      }
    }
    return smoke(target, seed, seconds, max_len, dirs);
  }
  if (mode.rfind("--", 0) == 0) return usage(argv[0]);
  const auto inputs = collect_inputs(args);
  for (const auto& path : inputs) {
    set_current_input_path(path.string());
    const auto bytes = read_file(path);
    fuzz_one(target, bytes.data(), bytes.size());
  }
  set_current_input_path("");
  fmt::print("{}: replayed {} input(s), every check passed\n", to_string(target), inputs.size());
  return 0;
}

}  // namespace spanheap::fuzz
