// Declares one fuzz target: SPANHEAP_FUZZ_TARGET(alloc_free) defines LLVMFuzzerTestOneInput for
// libFuzzer and AFL++ (whose driver calls the same entry point) and, in the replay build
// (SPANHEAP_FUZZ_REPLAY, every preset but fuzz-libfuzzer and fuzz-afl), a main() that replays
// files and runs a seeded smoke loop (replay_main.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "executor.hpp"
#include "program.hpp"

namespace spanheap::fuzz {
int replay_main(int argc, char** argv, Target target);
}  // namespace spanheap::fuzz

#ifdef SPANHEAP_FUZZ_REPLAY
#define SPANHEAP_FUZZ_REPLAY_MAIN(name)                                               \
  int main(int argc, char** argv) {                                                   \
    return ::spanheap::fuzz::replay_main(argc, argv, ::spanheap::fuzz::Target::name); \
  }
#else
#define SPANHEAP_FUZZ_REPLAY_MAIN(name)
#endif

#define SPANHEAP_FUZZ_TARGET(name)                                                    \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return ::spanheap::fuzz::fuzz_one(::spanheap::fuzz::Target::name, data, size);    \
  }                                                                                   \
  SPANHEAP_FUZZ_REPLAY_MAIN(name)
