// prop_runner: the main() of every property binary and the loop that runs one property (see
// prop_runner.hpp and docs/property-tests.md).
#include "prop_runner.hpp"

#include <fmt/core.h>
#include <spanheap/oracle/rng.hpp>
#include <spanheap/version.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string_view>

namespace spanheap::props {
namespace {

RunConfig g_config;

bool names_key(std::string_view params, std::string_view key) {
  // RC_PARAMS is "key=value key=value ..."; a key counts only at the start of a word.
  for (std::size_t pos = params.find(key); pos != std::string_view::npos;
       pos = params.find(key, pos + 1)) {
    bool starts = pos == 0 || params[pos - 1] == ' ';
    bool ends = pos + key.size() < params.size() && params[pos + key.size()] == '=';
    if (starts && ends) return true;
  }
  return false;
}

[[noreturn]] void usage(const char* argv0, const char* bad) {
  std::fprintf(stderr,
               "%s: unknown argument '%s'\n"
               "usage: %s [--smoke] [--seed N] [--seconds S] [gtest flags]\n"
               "  RC_PARAMS (rapidcheck) overrides: max_success, max_size, seed, reproduce\n",
               argv0, bad, argv0);
  std::exit(2);
}

std::string reproduce_params(const std::string& id, const rc::detail::Reproduce& reproduce) {
  rc::detail::Configuration config;
  config.reproduce[id] = reproduce;
  // Only the reproduce key: the seed and size are inside the reproduce blob.
  std::string all = rc::detail::configToMinimalString(config);
  std::string out;
  std::istringstream words(all);
  for (std::string word; words >> word;)
    if (word.rfind("reproduce=", 0) == 0) out = word;
  return out;
}

}  // namespace

const RunConfig& run_config() { return g_config; }

void run_property(const rc::detail::Property& property, const std::string& suite,
                  const std::string& name, int smoke_max_success, int smoke_max_size) {
  const RunConfig& run = g_config;
  const rc::detail::Configuration& base = rc::detail::configuration();
  rc::detail::TestMetadata metadata;
  metadata.id = suite + "/" + name;  // the same id RC_GTEST_PROP uses
  metadata.description = name;

  rc::detail::TestParams params = base.testParams;
  if (run.smoke && !run.user_max_success) params.maxSuccess = smoke_max_success;
  if (run.smoke && !run.user_max_size) params.maxSize = smoke_max_size;
  if (!run.user_seed && run.seed) params.seed = *run.seed;

  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(run.seconds);
  int rounds = 0;
  const std::uint64_t first_seed = params.seed;
  int cases = 0;
  for (;;) {
    const rc::detail::TestResult result = rc::detail::checkProperty(property, metadata, params);
    ++rounds;
    rc::detail::FailureResult failure;
    if (result.match(failure)) {
      std::ostringstream message;
      rc::detail::printResultMessage(result, message);
      std::string rc_params = reproduce_params(metadata.id, failure.reproduce);
      std::fprintf(stderr, "%s\nrepro: RC_PARAMS=\"%s\" %s --gtest_filter=%s.%s\n",
                   message.str().c_str(), rc_params.c_str(), run.argv0.c_str(), suite.c_str(),
                   name.c_str());
      FAIL() << message.str() << "\nrepro: RC_PARAMS=\"" << rc_params << "\" " << run.argv0
             << " --gtest_filter=" << suite << "." << name;
      return;
    }
    rc::detail::GaveUpResult gave_up;
    if (result.match(gave_up)) {
      FAIL() << "rapidcheck gave up after " << gave_up.numSuccess
             << " cases: " << gave_up.description << " (seed " << params.seed << ")";
      return;
    }
    rc::detail::Error error;
    if (result.match(error)) {
      FAIL() << "rapidcheck error: " << error.description;
      return;
    }
    rc::detail::SuccessResult success;
    if (result.match(success)) {
      cases += success.numSuccess;
      if (!success.distribution.empty()) {
        for (const auto& [tags, count] : success.distribution) {
          std::string line;
          for (const auto& tag : tags) line += (line.empty() ? "" : ", ") + tag;
          std::printf("  %5.1f%% %s\n", 100.0 * count / std::max(success.numSuccess, 1),
                      line.c_str());
        }
      }
    }
    if (run.reproducing || std::chrono::steady_clock::now() >= deadline) break;
    params.seed = oracle::mix(params.seed);  // successive rounds get unrelated seeds
  }
  std::printf(
      "%s.%s: %d cases passed in %d round(s) (max_success=%d max_size=%d first seed=%llu)\n",
      suite.c_str(), name.c_str(), cases, rounds, params.maxSuccess, params.maxSize,
      static_cast<unsigned long long>(first_seed));
}

}  // namespace spanheap::props

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  using spanheap::props::g_config;
  g_config.argv0 = argv[0];
  testing::InitGoogleTest(&argc, argv);  // consumes --gtest_* flags
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) spanheap::props::usage(argv[0], argv[i]);
      return argv[++i];
    };
    if (arg == "--smoke") {
      g_config.smoke = true;
    } else if (arg == "--seed") {
      g_config.seed = std::strtoull(value(), nullptr, 0);
    } else if (arg == "--seconds") {
      g_config.seconds = std::strtod(value(), nullptr);
    } else {
      spanheap::props::usage(argv[0], argv[i]);
    }
  }
  const char* env = std::getenv("RC_PARAMS");
  std::string_view params = env ? env : "";
  g_config.user_max_success = spanheap::props::names_key(params, "max_success");
  g_config.user_max_size = spanheap::props::names_key(params, "max_size");
  g_config.user_seed = spanheap::props::names_key(params, "seed");
  g_config.reproducing = spanheap::props::names_key(params, "reproduce");
  // CI runs are deterministic: --smoke without a seed uses seed 1; long runs explore.
  if (g_config.smoke && !g_config.seed) g_config.seed = 1;
  return RUN_ALL_TESTS();
}
