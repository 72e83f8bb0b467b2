// pacing: see pacing.hpp.
#include "pacing.hpp"

#include <limits>

#include "types.hpp"

namespace spanheap::detail {

std::uint64_t retained_goal(std::uint64_t survivors, std::uint64_t trigger) noexcept {
  if (trigger == 0) return 0;
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t goal = survivors > max - trigger ? max : survivors + trigger;
  return goal > max - goal / 10 ? max : goal + goal / 10;
}

PacingPlan plan_pacing(std::uint64_t survivors, unsigned gc_percent, std::uint64_t memory_limit,
                       std::uint64_t committed, std::uint64_t pages_to_sweep) noexcept {
  PacingPlan plan;
  std::uint64_t trigger = 0;
  if (gc_percent != 0) {
    // survivors * gc_percent / 100, exactly and saturating: survivors = 100q + r gives
    // q * gc_percent + r * gc_percent / 100, where only the first product can overflow (the
    // plain 64-bit product wrapped for large heaps or percentages: fuzz/regressions/pacing/).
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t q = survivors / 100, r = survivors % 100;
    const std::uint64_t low = r * gc_percent / 100;
    if (q > (max - low) / gc_percent) {
      trigger = max;
    } else {
      trigger = q * gc_percent + low;
    }
    if (trigger < trigger_floor) trigger = trigger_floor;
  }
  if (memory_limit != 0) {
    // Start a cycle before the limit is reached: at the latest when committed memory plus the
    // allocation distance would cross 90% of it.
    const std::uint64_t limit = memory_limit / 10 * 9;
    const std::uint64_t room = limit > committed ? limit - committed : page_size;
    if (trigger == 0 || room < trigger) trigger = room;
  }
  plan.trigger = trigger;
  if (trigger != 0 && pages_to_sweep != 0) {
    plan.pages_per_byte =
        static_cast<double>(pages_to_sweep) / (static_cast<double>(trigger) * 0.9);
  }
  return plan;
}

std::uint64_t sweep_target(double pages_per_byte, std::uint64_t allocated) noexcept {
  // A tiny trigger (one page of room under a memory limit) makes the ratio large; its product
  // with a large allocation can pass 2^64, where the conversion is undefined (found by the
  // pacing fuzz target: fuzz/regressions/pacing/).
  const double owed = pages_per_byte * static_cast<double>(allocated);
  constexpr double two64 = 18446744073709551616.0;
  if (!(owed < two64)) return std::numeric_limits<std::uint64_t>::max();
  return static_cast<std::uint64_t>(owed);
}

}  // namespace spanheap::detail
