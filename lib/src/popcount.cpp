// popcount: see popcount.hpp.
#include "popcount.hpp"

#if defined(__x86_64__) && !defined(__POPCNT__)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif
#endif

namespace spanheap::detail {

#if defined(__x86_64__) && !defined(__POPCNT__)
// glibc's answer where it has one (2.33 and later): the dynamic loader has read the CPU's
// features already, so asking costs a load. `cpuid` traps to the hypervisor in a virtual machine
// (4-8 µs each on the machines this is measured on), and libgcc's __builtin_cpu_init, which this
// used, runs a dozen of them: a preloaded malloc pays that in every process it starts in.
bool ask_cpu_for_popcnt() noexcept {
#if __has_include(<sys/platform/x86.h>)
  const bool has = CPU_FEATURE_ACTIVE(POPCNT);
#else
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool has = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_POPCNT) != 0;
#endif
  popcnt_answer.store(has ? 1 : 0, std::memory_order_relaxed);
  return has;
}
#endif

}  // namespace spanheap::detail
