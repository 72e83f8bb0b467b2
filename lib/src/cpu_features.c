/* cpu_features: the CPU feature popcount.cpp asks about, as the C library sees it. In C, not C++:
 * glibc's <sys/platform/x86.h> declares its functions with _Bool, which only GCC accepts in C++. */
#if defined(__x86_64__) && !defined(__POPCNT__)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h>
#else
#include <cpuid.h>
#endif

/* glibc's answer where it has one (2.33 and later): the dynamic loader has read the CPU's
 * features already, so asking costs a load. `cpuid` traps to the hypervisor in a virtual machine
 * (4-8 us each on the machines this is measured on), and libgcc's __builtin_cpu_init runs a dozen
 * of them: a preloaded malloc would pay that in every process it starts in. */
__attribute__((visibility("hidden"))) int spanheap_cpu_has_popcnt(void) {
#if __has_include(<sys/platform/x86.h>)
  return CPU_FEATURE_ACTIVE(POPCNT) ? 1 : 0;
#else
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_POPCNT) != 0;
#endif
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int spanheap_cpu_features_unused;
#endif
