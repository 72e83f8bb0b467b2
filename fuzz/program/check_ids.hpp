// The oracle's checks by name, and the crash each one ends in when it fails. Stack-based triage
// (ClusterFuzz, OSS-Fuzz, any deduplicator that hashes the top frames) would see every oracle
// failure as abort <- failure hook <- fuzz_one and file them all as one bug; instead a failed
// check prints `Check failed: <name>` (a name, never an address or an object number) and aborts
// through a function of its own, spanheap::fuzz::check_failed::<name>(), so two different bugs
// caught by two different checks get two different crash states. docs/fuzzing.md "Crash states".
#pragma once

#include <cstdint>
#include <string_view>

// One entry per check, grouped by what it watches. Names are part of the crash state: renaming
// one makes ClusterFuzz file its old crashes as new, so rename only with reason.
// clang-format off
#define SPANHEAP_FUZZ_CHECK_IDS(X)                \
  /* error reports (testing::RecordingHandler) */ \
  X(report_unexpected)                            \
  X(report_count)                                 \
  X(report_kind)                                  \
  X(report_ptr)                                   \
  /* live objects */                              \
  X(live_poisoned)                                \
  X(contents_intact)                              \
  X(find_object_live)                             \
  X(owns_live)                                    \
  X(usable_size_stable)                           \
  X(reclaimed_early)                              \
  /* allocation */                                \
  X(oom_unexplained)                              \
  X(alloc_alignment)                              \
  X(alloc_usable_size)                            \
  X(alloc_class_size)                             \
  X(alloc_owns)                                   \
  X(alloc_overlap)                                \
  X(alloc_quarantine)                             \
  X(alloc_find_object)                            \
  /* free, flush and sweep calls */               \
  X(free_pending)                                 \
  X(large_free_returned)                          \
  X(barrier_flush_count)                          \
  X(flush_idle_counter)                           \
  X(flush_idle_answer)                            \
  X(sweep_one_missed)                             \
  /* bad calls */                                 \
  X(bad_alloc_returned)                           \
  X(foreign_claimed)                              \
  X(other_heap_alloc)                             \
  X(other_heap_kind)                              \
  X(span_tail_kind)                               \
  X(interior_usable_size)                         \
  X(other_heap_free)                              \
  X(bad_call_changed_heap)                        \
  /* pacing */                                    \
  X(pacing_trigger)                               \
  X(pacing_ratio_finite)                          \
  X(pacing_ratio_zero)                            \
  X(pacing_ratio)                                 \
  X(sweep_target_value)                           \
  X(sweep_target_monotone)                        \
  X(sweep_target_zero)                            \
  X(sweep_target_complete)                        \
  /* size classes */                              \
  X(size_class_table)                             \
  X(size_class_large_fits)                        \
  X(size_class_exists)                            \
  X(size_class_fits)                              \
  X(size_class_alignment)                         \
  X(size_class_smallest)                          \
  X(size_class_layout)                            \
  X(size_class_tail_waste)                        \
  X(size_class_round_trip)                        \
  /* counters, snapshots and the whole heap */    \
  X(heap_verify)                                  \
  X(snapshot_rules)                               \
  X(flushes_lazy)                                 \
  X(stale_after_flush)                            \
  X(flushes_barrier)                              \
  X(stats_counters)                               \
  X(stats_live)                                   \
  X(reuse_counters)                               \
  X(sweep_done_pending)                           \
  X(free_run_live)                                \
  X(snapshot_stale)                               \
  X(heap_empty_at_end)

namespace spanheap::fuzz {

enum class CheckId : std::uint8_t {
#define SPANHEAP_FUZZ_CHECK_ENUMERATOR(name) name,
  SPANHEAP_FUZZ_CHECK_IDS(SPANHEAP_FUZZ_CHECK_ENUMERATOR)
#undef SPANHEAP_FUZZ_CHECK_ENUMERATOR
  none,  // no check failed
};
// clang-format on

std::string_view to_string(CheckId id);

// Aborts through check_failed::<name of id>(), a frame of its own per check (check_ids.cpp).
[[noreturn]] void abort_at(CheckId id);

}  // namespace spanheap::fuzz
