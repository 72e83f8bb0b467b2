// One function per oracle check, so a failed check has a frame of its own (check_ids.hpp).
#include "check_ids.hpp"

#include <cstdlib>

namespace spanheap::fuzz {

std::string_view to_string(CheckId id) {
  switch (id) {
#define SPANHEAP_FUZZ_CHECK_NAME(name) \
  case CheckId::name:                  \
    return #name;
    SPANHEAP_FUZZ_CHECK_IDS(SPANHEAP_FUZZ_CHECK_NAME)
#undef SPANHEAP_FUZZ_CHECK_NAME
    case CheckId::none:
      break;
  }
  return "none";
}

// The name a debugger or a core dump shows for the check that failed last.
extern "C" {
const char* volatile spanheap_fuzz_failed_check = nullptr;
}

namespace check_failed {

// Each function stores its own name before it aborts: the stores make the bodies differ, so
// identical-code folding (lld --icf) cannot merge them, and noinline keeps each one a frame.
// They call abort() rather than return, and a call to a noreturn function is never turned into
// a jump, so the frame stays on the stack the sanitizer prints.
#define SPANHEAP_FUZZ_CHECK_FRAME(name)     \
  [[noreturn, gnu::noinline]] void name() { \
    spanheap_fuzz_failed_check = #name;     \
    std::abort();                           \
  }
SPANHEAP_FUZZ_CHECK_IDS(SPANHEAP_FUZZ_CHECK_FRAME)
#undef SPANHEAP_FUZZ_CHECK_FRAME

[[noreturn, gnu::noinline]] void unnamed() {
  spanheap_fuzz_failed_check = "none";
  std::abort();
}

}  // namespace check_failed

void abort_at(CheckId id) {
  switch (id) {
#define SPANHEAP_FUZZ_CHECK_CALL(name) \
  case CheckId::name:                  \
    check_failed::name();
    SPANHEAP_FUZZ_CHECK_IDS(SPANHEAP_FUZZ_CHECK_CALL)
#undef SPANHEAP_FUZZ_CHECK_CALL
    case CheckId::none:
      break;
  }
  check_failed::unnamed();
}

}  // namespace spanheap::fuzz
