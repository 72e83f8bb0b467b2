// popcount: see popcount.hpp.
#include "popcount.hpp"

namespace spanheap::detail {

#if defined(__x86_64__) && !defined(__POPCNT__)
bool ask_cpu_for_popcnt() noexcept {
  __builtin_cpu_init();  // the heap may run before the constructors that would call it
  const bool has = __builtin_cpu_supports("popcnt") != 0;
  popcnt_answer.store(has ? 1 : 0, std::memory_order_relaxed);
  return has;
}
#endif

}  // namespace spanheap::detail
