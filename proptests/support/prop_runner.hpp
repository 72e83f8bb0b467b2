// prop_runner: how every property binary runs its rapidcheck properties under GoogleTest, with the
// project's standard flags (--smoke, --seed, --seconds) and one repro line per failure. See
// docs/property-tests.md.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace spanheap::props {

// What the command line and RC_PARAMS asked for. Precedence: an explicit RC_PARAMS key wins over
// the flags (so `RC_PARAMS="max_success=5000" ctest -L property` runs long although ctest passes
// --smoke), and --smoke wins over rapidcheck's defaults.
struct RunConfig {
  bool smoke = false;                 // --smoke: each property runs its own small max_success
  std::optional<std::uint64_t> seed;  // --seed N (also fixed to 1 under --smoke unless given)
  double seconds = 0;                 // --seconds S: repeat rounds with fresh seeds until S elapsed
  bool user_max_success = false;      // RC_PARAMS names max_success
  bool user_max_size = false;         // RC_PARAMS names max_size
  bool user_seed = false;             // RC_PARAMS names seed
  bool reproducing = false;           // RC_PARAMS names reproduce: run exactly once
  std::string argv0;
};

const RunConfig& run_config();

// Runs one property as the current GoogleTest test: one round with the configured parameters, or
// rounds with successive seeds until --seconds have passed. On failure prints rapidcheck's shrunk
// counterexample and the exact one-line repro command, and fails the test.
void run_property(const rc::detail::Property& property, const std::string& suite,
                  const std::string& name, int smoke_max_success, int smoke_max_size);

}  // namespace spanheap::props

// Defines a rapidcheck property as a GoogleTest test (like RC_GTEST_PROP), run by run_property.
// `SmokeRuns` and `SmokeSize` are the max_success and max_size used under --smoke: chosen per
// property so that the whole suite stays within seconds under ASan.
#define SPANHEAP_PROP(Suite, Name, SmokeRuns, SmokeSize, ArgList)                              \
  static void spanheap_prop_##Suite##_##Name ArgList;                                          \
  TEST(Suite, Name) {                                                                          \
    ::spanheap::props::run_property(::rc::detail::toProperty(&spanheap_prop_##Suite##_##Name), \
                                    #Suite, #Name, SmokeRuns, SmokeSize);                      \
  }                                                                                            \
  static void spanheap_prop_##Suite##_##Name ArgList
