// query_ops: the operations that need no heap — the size-class table and the pacer's
// arithmetic against their contracts (see execution.hpp).
#include <spanheap/testing.hpp>

#include <cmath>
#include <limits>

#include "execution.hpp"

namespace spanheap::fuzz {

const std::map<unsigned, testing::SizeClassInfo>& class_table() {
  static const std::map<unsigned, testing::SizeClassInfo> table = [] {
    std::map<unsigned, testing::SizeClassInfo> t;
    for (const auto& c : testing::size_classes()) t.emplace(c.span_class, c);
    return t;
  }();
  return table;
}

// The model is the contract of lib/src/pacing.hpp computed in 128-bit integers and long double:
// the trigger exactly, the ratio to 1e-12, the sweep target to the rounding of one double
// product, saturating instead of wrapping, monotone in the bytes allocated, and owing every
// page once 90% of the trigger is allocated.
void ProgramExecution::pacing_query(const PacingQuery& q) {
  __extension__ typedef unsigned __int128 u128;  // the model's exact arithmetic
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const testing::PacingPlan plan = testing::plan_pacing(q.survivors, q.gc_percent, q.memory_limit,
                                                        q.committed, q.pages_to_sweep);
  note("trigger {} ratio {}", plan.trigger, plan.pages_per_byte);
  std::uint64_t want = 0;
  if (q.gc_percent != 0) {
    const u128 t = u128{q.survivors} * q.gc_percent / 100;
    want = t > max ? max : static_cast<std::uint64_t>(t);
    want = std::max(want, testing::pacing_trigger_floor());
  }
  if (q.memory_limit != 0) {
    const std::uint64_t limit = q.memory_limit / 10 * 9;
    const std::uint64_t room = limit > q.committed ? limit - q.committed : page_size;
    if (want == 0 || room < want) want = room;
  }
  if (plan.trigger != want) {
    return fail(
        CheckId::pacing_trigger,
        "plan_pacing: trigger {} but the contract gives {} (survivors {}, gc {}%, limit {}, "
        "committed {})",
        plan.trigger, want, q.survivors, q.gc_percent, q.memory_limit, q.committed);
  }
  const double ratio = plan.pages_per_byte;
  if (!std::isfinite(ratio) || ratio < 0)
    return fail(CheckId::pacing_ratio_finite,
                "plan_pacing: ratio {} is not a finite, non-negative number", ratio);
  if (want == 0 || q.pages_to_sweep == 0) {
    if (ratio != 0)
      return fail(CheckId::pacing_ratio_zero, "plan_pacing: ratio {} with nothing to pace", ratio);
  } else {
    const long double exact =
        static_cast<long double>(q.pages_to_sweep) / (static_cast<long double>(want) * 0.9L);
    if (std::fabs(static_cast<long double>(ratio) - exact) > exact * 1e-12L)
      return fail(CheckId::pacing_ratio,
                  "plan_pacing: ratio {} but {} pages over 90% of {} bytes is {}", ratio,
                  q.pages_to_sweep, want, static_cast<double>(exact));
  }
  // The sweep target: floor(ratio * allocated), saturating at 2^64-1.
  auto expected = [&](std::uint64_t allocated) -> long double {
    return static_cast<long double>(ratio) * static_cast<long double>(allocated);
  };
  auto near = [&](std::uint64_t got, long double exact) {
    const long double two64 = 18446744073709551616.0L;
    if (exact >= two64) return got >= max - (max >> 40);  // saturated, up to the rounding
    const long double slack = 1.0L + exact * 1e-15L;
    return std::fabs(static_cast<long double>(got) - std::floor(exact)) <= slack;
  };
  const std::uint64_t got = testing::sweep_target(ratio, q.allocated);
  if (!near(got, expected(q.allocated))) {
    return fail(CheckId::sweep_target_value, "sweep_target({}, {}) = {}, expected about {}", ratio,
                q.allocated, got, static_cast<double>(expected(q.allocated)));
  }
  const std::uint64_t more = q.allocated > max / 2 ? max : q.allocated * 2 + 1;
  const std::uint64_t got_more = testing::sweep_target(ratio, more);
  if (got_more < got)
    return fail(CheckId::sweep_target_monotone,
                "sweep_target is not monotone: {} bytes owe {} pages, {} bytes owe {}", q.allocated,
                got, more, got_more);
  if (testing::sweep_target(ratio, 0) != 0)
    return fail(CheckId::sweep_target_zero, "sweep_target({}, 0) is not 0", ratio);
  if (want != 0 && q.pages_to_sweep != 0) {
    // Every page is owed once 90% of the trigger is allocated (up to a page of rounding).
    const long double at = std::ceil(static_cast<long double>(want) * 0.9L);
    const std::uint64_t bytes =
        at >= 18446744073709551615.0L ? max : static_cast<std::uint64_t>(at);
    const std::uint64_t owed = testing::sweep_target(ratio, bytes);
    // The ratio is a double: past 2^53 pages the owed count is exact only to its precision.
    const auto slack =
        static_cast<std::uint64_t>(1 + static_cast<double>(q.pages_to_sweep) * 1e-15);
    if (q.pages_to_sweep > slack && owed < q.pages_to_sweep - slack && bytes != max)
      return fail(CheckId::sweep_target_complete,
                  "after {} bytes (90% of the trigger {}) only {} of {} pages are owed", bytes,
                  want, owed, q.pages_to_sweep);
  }
}

void ProgramExecution::size_query(const SizeQuery& op) {
  const auto& table = class_table();
  if (table.empty()) return fail(CheckId::size_class_table, "testing::size_classes() is empty");
  const unsigned cls = testing::size_to_class(op.size, op.align);
  note("class {}", cls);
  // The smallest class that fits and keeps the alignment (objects sit at base + i * size, spans
  // are page aligned, so a class keeps `align` when its size is a multiple of it).
  // Alignments above the page size make a large span (class 0); the decoder never asks for
  // them here, and the call must only answer without crashing.
  if (op.align > page_size) return;
  unsigned best = 0;
  std::size_t best_size = 0;
  if (op.size <= max_small_size && op.align <= page_size) {
    for (const auto& [c, info] : table) {
      if (info.size >= op.size && info.size % op.align == 0 &&
          (best == 0 || info.size < best_size)) {
        best = c;
        best_size = info.size;
      }
    }
  }
  if (cls == 0) {
    if (best != 0) {
      fail(CheckId::size_class_large_fits,
           "size_to_class({}, {}) = 0 (large) but class {} ({} bytes) fits", op.size, op.align,
           best, best_size);
    }
    return;
  }
  auto it = table.find(cls);
  if (it == table.end())
    return fail(CheckId::size_class_exists, "size_to_class({}, {}) = {}: no such class", op.size,
                op.align, cls);
  const testing::SizeClassInfo& info = it->second;
  if (info.size < op.size) {
    return fail(CheckId::size_class_fits, "size_to_class({}, {}) = class {} of only {} bytes",
                op.size, op.align, cls, info.size);
  }
  if (info.size % op.align != 0 && op.align <= page_size) {
    return fail(CheckId::size_class_alignment,
                "size_to_class({}, {}) = class {} ({} bytes) does not keep the alignment", op.size,
                op.align, cls, info.size);
  }
  if (info.size != best_size) {
    return fail(CheckId::size_class_smallest,
                "size_to_class({}, {}) = class {} ({} bytes), but class {} ({} bytes) is smaller "
                "and fits",
                op.size, op.align, cls, info.size, best, best_size);
  }
  if (info.nelems == 0 || info.nelems * info.size + info.tail_waste != info.npages * page_size) {
    return fail(CheckId::size_class_layout,
                "class {}: {} objects of {} bytes + {} tail != {} pages", cls, info.nelems,
                info.size, info.tail_waste, info.npages);
  }
  if (info.tail_waste * 8 > info.npages * page_size) {
    return fail(CheckId::size_class_tail_waste, "class {}: tail waste {} exceeds 12.5% of {} pages",
                cls, info.tail_waste, info.npages);
  }
  if (testing::size_to_class(info.size, 1) != cls && testing::size_to_class(info.size, 1) != 0) {
    const auto other = table.find(testing::size_to_class(info.size, 1));
    if (other == table.end() || other->second.size != info.size) {
      return fail(CheckId::size_class_round_trip,
                  "round trip: class {} has size {}, but size_to_class({}, 1) = {}", cls, info.size,
                  info.size, testing::size_to_class(info.size, 1));
    }
  }
}

}  // namespace spanheap::fuzz
