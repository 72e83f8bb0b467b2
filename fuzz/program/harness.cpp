// What every fuzz target's LLVMFuzzerTestOneInput does (fuzz_one), and what happens when the
// oracle fails: print the failure and the program so far, save the input, print the repro line,
// abort. See executor.hpp.
#include <fmt/format.h>
#include <spanheap/version.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "executor.hpp"
#include "sanitizers.hpp"

namespace spanheap::fuzz {
namespace {

FailureHook g_hook = &default_failure_hook;
std::string g_input_path;

// Where to save a failing input that has no file yet. libFuzzer, run by ci/fuzz with
// -artifact_prefix=<dir>/crash-<target>-, writes its artifact to the same name, so the repro line
// printed here names the file libFuzzer keeps.
std::string artifact_path(Target target, std::span<const std::uint8_t> input) {
  const char* prefix = std::getenv("SPANHEAP_FUZZ_ARTIFACT_PREFIX");
  const std::string base = prefix != nullptr && *prefix != '\0'
                               ? std::string(prefix)
                               : fmt::format("crash-{}-", to_string(target));
  return base + sha1_hex(input);
}

}  // namespace

}  // namespace spanheap::fuzz

// libFuzzer and AFL++'s driver call this before fuzzing: --version answers as in every binary.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (spanheap::print_version_if_asked(*argc, *argv)) std::exit(0);
  return 0;
}

#ifdef SPANHEAP_FUZZ_ASAN
// ASan's defaults for every binary built from the fuzz targets (an ASAN_OPTIONS variable still
// overrides them). Every execution allocates a fresh heap's state and the oracle's model with
// malloc (about 40 blocks, 75 KiB); the heap's own objects do not go through malloc and keep
// their use-after-free detection (poison_freed). With the default 256 MiB quarantine none of
// that memory was reused for thousands of executions, so each one faulted in new pages (the
// empty program cost 46 us with it, 17 us with 10 MiB); 1 MiB still holds a dozen executions'
// blocks and keeps them in cache, and 8 frames of allocation stack (30 by default) still name
// the caller (together 4-11% of an execution against 10 MiB and 30 frames).
extern "C" const char* __asan_default_options() {
  return "quarantine_size_mb=1:malloc_context_size=8";
}
#endif

namespace spanheap::fuzz {

void set_failure_hook(FailureHook hook) { g_hook = hook != nullptr ? hook : &default_failure_hook; }
void set_current_input_path(const std::string& path) { g_input_path = path; }

void default_failure_hook(const Program& program, const Outcome& outcome,
                          std::span<const std::uint8_t> input) {
  // Run again with tracing on: the heap is deterministic, so the rerun fails at the same step and
  // shows which objects each operation resolved to.
  const Outcome traced = run(program, RunOptions{.trace = true});
  std::string path = g_input_path;
  if (path.empty()) {
    path = artifact_path(program.target, input);
    if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
      std::fwrite(input.data(), 1, input.size(), f);
      std::fclose(f);
    }
  }
  const Outcome& shown = traced.ok ? outcome : traced;
  std::string text = fmt::format(
      "\n==== spanheap fuzz: oracle failure in target {} ====\n"
      "step {} of {}: {}\n",
      to_string(program.target), outcome.step, program.ops.size(), outcome.failure);
  if (traced.ok) {
    text += "(the traced rerun did not fail: the heap is not deterministic for this input)\n";
  } else if (traced.step != outcome.step || traced.failure != outcome.failure) {
    text += fmt::format("(the traced rerun failed differently: step {}: {})\n", traced.step,
                        traced.failure);
  }
  text += fmt::format(
      "---- heap options ----\n{}\n"
      "---- program so far, as executed (step  operation  -> what it resolved to) ----\n{}",
      describe_config(program), shown.trace);
  text += fmt::format(
      "  >>>>  failed here: {}\n"
      "---- repro ----\n"
      "ci/repro {} --target {}\n"
      "==== end of spanheap fuzz failure ====\n",
      shown.failure, path, to_string(program.target));
  // The crash state for stack-based triage (check_ids.hpp): a line in the form ClusterFuzz parses
  // as a CHECK failure ("[<anything>:<file>] Check failed: <condition>"), then an abort through
  // the check's own frame.
  text += fmt::format("[spanheap:{}_fuzzer] Check failed: {}\n", to_string(program.target),
                      outcome.crash_state());
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  abort_at(outcome.check);
}

int fuzz_one(Target target, const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  // SPANHEAP_FUZZ_REPEAT=N: run every input N more times and print its CPU cost per execution
  // (docs/fuzzing.md "Measuring"); under the real engine's instrumentation, without its
  // mutation and corpus bookkeeping.
  static const long repeat = [] {
    const char* v = std::getenv("SPANHEAP_FUZZ_REPEAT");
    return v != nullptr ? std::strtol(v, nullptr, 10) : 0L;
  }();
  if (repeat > 0) {
    const Program program = decode(target, input);
    timespec t0{}, t1{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (long i = 0; i < repeat; ++i) (void)run(program);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    const double us = (static_cast<double>(t1.tv_sec - t0.tv_sec) * 1e6 +
                       static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e3) /
                      static_cast<double>(repeat);
    fmt::print(stderr, "spanheap fuzz: {} ops, {:.1f} us/exec (cpu, {} runs)\n", program.ops.size(),
               us, repeat);
  }
  const Program program = decode(target, input);
  const Outcome outcome = run(program);
  if (!outcome.ok) g_hook(program, outcome, input);
  return 0;
}

// --- SHA-1 (FIPS 180-4), only to name artifacts the way libFuzzer does -------------------------
std::string sha1_hex(std::span<const std::uint8_t> bytes) {
  std::array<std::uint32_t, 5> h = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u,
                                    0xC3D2E1F0u};
  std::vector<std::uint8_t> msg(bytes.begin(), bytes.end());
  const std::uint64_t bits = std::uint64_t{bytes.size()} * 8;
  msg.push_back(0x80);
  while (msg.size() % 64 != 56) msg.push_back(0);
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<std::uint8_t>(bits >> (8 * i)));
  auto rol = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  for (std::size_t block = 0; block < msg.size(); block += 64) {
    std::array<std::uint32_t, 80> w{};
    for (std::size_t i = 0; i < 16; ++i) {
      w[i] = (std::uint32_t{msg[block + 4 * i]} << 24) |
             (std::uint32_t{msg[block + 4 * i + 1]} << 16) |
             (std::uint32_t{msg[block + 4 * i + 2]} << 8) | std::uint32_t{msg[block + 4 * i + 3]};
    }
    for (std::size_t i = 16; i < 80; ++i)
      w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (std::size_t i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999u;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1u;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDCu;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6u;
      }
      const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  return fmt::format("{:08x}{:08x}{:08x}{:08x}{:08x}", h[0], h[1], h[2], h[3], h[4]);
}

}  // namespace spanheap::fuzz
