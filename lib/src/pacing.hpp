// pacing: the arithmetic of the pacer, as pure functions of plain numbers so that property tests
// and the pacing fuzz target can drive them with any values (world.cpp and sweeper.cpp apply
// them to the heap). Go shipped bugs in exactly this arithmetic (#57523: sweep debt from a
// decreasing quantity in unsigned arithmetic).
#pragma once

#include <cstddef>
#include <cstdint>

namespace spanheap::detail {

// Go's heapminimum: tiny heaps do not cycle constantly.
inline constexpr std::uint64_t trigger_floor = std::uint64_t{4} << 20;

struct PacingPlan {
  std::uint64_t trigger = 0;  // bytes of allocation until the next cycle; 0 = no pacing
  double pages_per_byte = 0;  // proportional sweep ratio; 0 = none
};

// The plan made at a cycle's bump. `survivors`: bytes allocated and not freed; `committed`:
// bytes the page heap has committed; `pages_to_sweep`: pages left unswept by the bump.
// Trigger: gc_percent% of the survivors (saturating, at least trigger_floor) when gc_percent is
// not 0; with a memory limit, at most the room left below 90% of it (at least one page). Ratio:
// every page swept by the time 90% of the trigger is allocated.
PacingPlan plan_pacing(std::uint64_t survivors, unsigned gc_percent, std::uint64_t memory_limit,
                       std::uint64_t committed, std::uint64_t pages_to_sweep) noexcept;

// The memory the scavenger lets a paced heap keep committed: the heap goal (the survivors of the
// last bump plus the allocation distance to the next one) and 10 % more (Go's retainExtraPercent),
// saturating. Free pages within it stay committed, so memory freed and allocated again between
// cycles is not released and faulted back in; 0 when there is no trigger (no goal).
std::uint64_t retained_goal(std::uint64_t survivors, std::uint64_t trigger) noexcept;

// Pages that should have been swept once `allocated` bytes were allocated this cycle: the ratio
// times the bytes, rounded down, saturating at UINT64_MAX (a cast of a larger double is
// undefined). Monotone in `allocated`.
std::uint64_t sweep_target(double pages_per_byte, std::uint64_t allocated) noexcept;

}  // namespace spanheap::detail
