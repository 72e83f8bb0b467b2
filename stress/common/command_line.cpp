// The stress harness's command line: the flags every driver takes (Run::Run) and the exact
// command that reruns a configuration (Run::repro). docs/stress.md describes the flags.
#include "harness.hpp"
#include "harness_internal.hpp"

#include <fmt/format.h>
#include <spanheap/version.hpp>

#include <sys/personality.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>

namespace spanheap::stress {
using namespace detail;
namespace {

const char* usage_text =
    "usage: {0} [flags]\n"
    "  --threads N          mutator threads\n"
    "  --seconds S          time budget of the timed loop (fractions allowed)\n"
    "  --seed N             seed of every thread's choices (default: random, printed)\n"
    "  --smoke              small, fast defaults (explicit flags still win)\n"
    "  --flush lazy|eager   cache flush policy\n"
    "  --sweepers N         background sweeper threads (Options::sweepers)\n"
    "  --procs N            number of Ps (Options::procs; 0 = driver default)\n"
    "  --verify-every-ms N  period of the verify() thread (0 = off)\n"
    "  --stw-every-us N     mean gap between random-interval collect() calls\n"
    "  --collectors N       threads forcing cycles (the first as fast as it can)\n"
    "  --sweep-threads N    threads calling sweep_one() in a loop\n"
    "  --checks release|debug|expensive   library check tier (default expensive)\n"
    "  --max-large BYTES    largest object drawn\n"
    "  --yield-at-points N  pause at the heap's protocol points (N per mille sleep, 3N yield)\n"
    "  --help\n";

[[noreturn]] void usage(std::string_view driver, int code, std::string_view error = {}) {
  if (!error.empty()) fmt::print(stderr, "{}: {}\n", driver, error);
  fmt::print(code == 0 ? stdout : stderr, fmt::runtime(usage_text), driver);
  std::exit(code);
}

template <typename T>
T parse_uint(std::string_view driver, std::string_view flag, std::string_view v) {
  T out{};
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || ptr != v.data() + v.size()) {
    usage(driver, 2, fmt::format("bad value '{}' for {}", v, flag));
  }
  return out;
}

// Sets the field of `cfg` that `flag` names from `value`; prints usage and exits on a bad value.
void apply_flag(std::string_view driver, Config& cfg, std::string_view flag,
                std::string_view value) {
  if (flag == "--threads") {
    cfg.threads = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--seconds") {
    char* end = nullptr;
    std::string v(value);
    cfg.seconds = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != 0 || !(cfg.seconds >= 0)) usage(driver, 2, "bad --seconds");
  } else if (flag == "--seed") {
    cfg.seed = parse_uint<std::uint64_t>(driver, flag, value);
  } else if (flag == "--flush") {
    if (value == "lazy")
      cfg.flush = FlushPolicy::lazy;
    else if (value == "eager")
      cfg.flush = FlushPolicy::eager;
    else
      usage(driver, 2, "--flush takes lazy or eager");
  } else if (flag == "--sweepers") {
    cfg.sweepers = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--procs") {
    cfg.procs = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--verify-every-ms") {
    cfg.verify_every_ms = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--stw-every-us") {
    cfg.stw_every_us = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--collectors") {
    cfg.collectors = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--sweep-threads") {
    cfg.sweep_threads = parse_uint<unsigned>(driver, flag, value);
  } else if (flag == "--checks") {
    if (value == "release")
      cfg.checks = CheckLevel::release;
    else if (value == "debug")
      cfg.checks = CheckLevel::debug;
    else if (value == "expensive")
      cfg.checks = CheckLevel::expensive;
    else
      usage(driver, 2, "--checks takes release, debug or expensive");
  } else if (flag == "--max-large") {
    cfg.max_large = parse_uint<std::size_t>(driver, flag, value);
  } else if (flag == "--yield-at-points") {
    cfg.yield_at_points = parse_uint<unsigned>(driver, flag, value);
    if (cfg.yield_at_points > 250) usage(driver, 2, "--yield-at-points takes 0 to 250 (per mille)");
  } else {
    usage(driver, 2, fmt::format("unknown flag {}", flag));
  }
}

}  // namespace

namespace detail {

const char* to_flag(FlushPolicy f) { return f == FlushPolicy::lazy ? "lazy" : "eager"; }

const char* to_flag(CheckLevel c) {
  switch (c) {
    case CheckLevel::release:
      return "release";
    case CheckLevel::debug:
      return "debug";
    case CheckLevel::expensive:
      return "expensive";
  }
  return "?";
}

std::string shell_quote(std::string_view s) {
  bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("/._-=:,+", c) != nullptr;
  });
  if (plain) return std::string(s);
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace detail

Run::Run(std::string_view driver, int argc, char** argv, const Defaults& defaults)
    : driver_(driver), argv0_(argc > 0 ? argv[0] : std::string(driver)) {
  if (print_version_if_asked(argc, argv)) std::exit(0);
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--smoke") smoke = true;
    if (a == "--help" || a == "-h") usage(driver_, 0);
  }
  cfg_ = smoke ? defaults.smoke : defaults.normal;
  cfg_.smoke = smoke;
  bool seed_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--smoke") continue;
    if (a.substr(0, 2) != "--") usage(driver_, 2, fmt::format("unexpected argument '{}'", a));
    std::string_view flag = a, value;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else {
      static constexpr std::string_view known[] = {
          "--threads", "--seconds",         "--seed",           "--flush",      "--sweepers",
          "--procs",   "--verify-every-ms", "--stw-every-us",   "--collectors", "--sweep-threads",
          "--checks",  "--max-large",       "--yield-at-points"};
      if (std::find(std::begin(known), std::end(known), flag) == std::end(known)) {
        usage(driver_, 2, fmt::format("unknown flag {}", flag));
      }
      if (i + 1 >= argc) usage(driver_, 2, fmt::format("{} needs a value", flag));
      value = argv[++i];
    }
    apply_flag(driver_, cfg_, flag, value);
    if (flag == "--seed") seed_given = true;
    explicit_flags_.emplace_back(flag);
  }
  if (!seed_given) {
    std::random_device rd;
    cfg_.seed =
        (std::uint64_t{rd()} << 32 | rd()) ^
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    cfg_.seed &= (std::uint64_t{1} << 53) - 1;  // keeps seeds short enough to read out loud
  }
  if (cfg_.threads == 0) usage(driver_, 2, "--threads must be at least 1");
}

std::string Run::repro() const {
  std::string cmd;
  std::string_view preset = build_preset();
  if (!preset.empty()) {
    cmd += fmt::format("cmake --preset {0} && cmake --build --preset {0} --target {1} && ", preset,
                       driver_);
  }
  for (const char* var : {"TSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS"}) {
    if (const char* v = std::getenv(var)) cmd += fmt::format("{}={} ", var, shell_quote(v));
  }
  // The heap's own settings (Options::from_env), not every SPANHEAP_* a script may export.
  for (const char* var : {"SPANHEAP_PROCS", "SPANHEAP_SWEEPERS", "SPANHEAP_FLUSH", "SPANHEAP_REUSE",
                          "SPANHEAP_BINDING", "SPANHEAP_GC_PERCENT", "SPANHEAP_MEMORY_LIMIT",
                          "SPANHEAP_CHECKS", "SPANHEAP_POISON", "SPANHEAP_CLOBBER",
                          "SPANHEAP_COLLECT_EVERY", "SPANHEAP_VERIFY", "SPANHEAP_TRACE"}) {
    if (const char* v = std::getenv(var)) cmd += fmt::format("{}={} ", var, shell_quote(v));
  }
  int pers = personality(0xffffffff);
  if (pers != -1 && (pers & ADDR_NO_RANDOMIZE) != 0) cmd += "setarch \"$(uname -m)\" -R ";
  cmd += preset.empty() ? shell_quote(argv0_) : fmt::format("build/{}/stress/{}", preset, driver_);
  cmd += fmt::format(
      " --seed {} --threads {} --seconds {} --flush {} --sweepers {} --procs {}"
      " --verify-every-ms {} --stw-every-us {} --collectors {} --sweep-threads {} --checks {}"
      " --max-large {}",
      cfg_.seed, cfg_.threads, cfg_.seconds, to_flag(cfg_.flush), cfg_.sweepers, cfg_.procs,
      cfg_.verify_every_ms, cfg_.stw_every_us, cfg_.collectors, cfg_.sweep_threads,
      to_flag(cfg_.checks), cfg_.max_large);
  if (cfg_.yield_at_points != 0) cmd += fmt::format(" --yield-at-points {}", cfg_.yield_at_points);
  return cmd;
}

}  // namespace spanheap::stress
