// SPANHEAP_FUZZ_ASAN: defined when the binary has AddressSanitizer, for the parts of the fuzz
// program that talk to ASan (the heap's poison_freed option, the oracle's poison checks, the
// recycled arenas' shadow, the default options): when this translation unit is built with it
// (clang's __has_feature or gcc's __SANITIZE_ADDRESS__), or when the build says the runtime is
// linked although this library is built without the instrumentation (SPANHEAP_FUZZ_ASAN_RUNTIME,
// fuzz/CMakeLists.txt).
#pragma once

#if defined(SPANHEAP_FUZZ_ASAN_RUNTIME) || defined(__SANITIZE_ADDRESS__)
#define SPANHEAP_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPANHEAP_FUZZ_ASAN 1
#endif
#endif
