// SPANHEAP_FUZZ_ASAN: defined when this translation unit is built with AddressSanitizer (clang's
// __has_feature or gcc's __SANITIZE_ADDRESS__), for the parts of the fuzz program that talk to
// ASan (the heap's poison_freed option, the recycled arenas' shadow, the default options).
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define SPANHEAP_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPANHEAP_FUZZ_ASAN 1
#endif
#endif
