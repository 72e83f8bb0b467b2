// sweepgen_moves: the allowed-moves table of the sweepgen protocol (DESIGN §3), as deltas from
// the heap's sweepgen between two world-stopped snapshots with no cycle in between, and who may
// make each move. One table for every oracle that compares snapshots: a new transition (a P
// collecting its own pending frees, say) is one more row here.
#pragma once

#include <cstdint>

namespace spanheap::oracle {

// Who acted on a span during one step, as far as the protocol cares (a bit set).
enum Actor : unsigned {
  sweeper = 1u << 0,           // the step may sweep uncached spans (allocation, a free into
                               // the span, sweep_one, proportional sweep)
  owner = 1u << 1,             // the step acquired the P caching the span (or the heap flushed
                               // that idle P to free into it)
  allocating_owner = 1u << 2,  // ... and allocated on that P
  barrier = 1u << 3,           // the ragged barrier or flush_all flushed every stale P
  flush_all = 1u << 4,         // flush_all returned every cached span to central
};

struct SweepgenMove {
  std::int64_t from;   // sweepgen delta before the step
  std::int64_t to;     // and after
  unsigned needs_any;  // at least one of these actors (0: anyone)
  unsigned needs_all;  // every one of these actors
  unsigned forbids;    // none of these actors
  bool sweeps;         // the move is a sweep (counted in Stats)
  const char* invariant;
  const char* rule;  // what a move breaking needs/forbids did wrong
};

struct MoveVerdict {
  bool allowed;
  bool sweeps;            // when allowed: the move counts as one sweep
  const char* invariant;  // when not allowed
  const char* rule;
};

// Judges a span that stayed in use (same base, class and size) from delta `from` to delta `to`
// in a step whose actors on it are `actors`.
MoveVerdict judge_sweepgen_move(std::int64_t from, std::int64_t to, unsigned actors) noexcept;

}  // namespace spanheap::oracle
