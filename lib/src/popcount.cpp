// popcount: see popcount.hpp.
#include "popcount.hpp"

#if defined(__x86_64__) && !defined(__POPCNT__)
extern "C" int spanheap_cpu_has_popcnt(void);  // cpu_features.c
#endif

namespace spanheap::detail {

#if defined(__x86_64__) && !defined(__POPCNT__)
bool ask_cpu_for_popcnt() noexcept {
  const bool has = spanheap_cpu_has_popcnt() != 0;
  popcnt_answer.store(has ? 1 : 0, std::memory_order_relaxed);
  return has;
}
#endif

}  // namespace spanheap::detail
