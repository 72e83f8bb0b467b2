// world: stop / start the world and the cycle (Go's proc.go STW and mgc.go gcStart/gcSweep):
// sweep termination, the INV-G1 preconditions, sweepgen += 2, eager flush or lazy staleness, the
// ragged barrier that flushes idle Ps after the restart, pacing of automatic cycles.
#pragma once

#include <cstdint>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Requires: the caller holds world.cycle_mu and no P.
WorldStopped stop_the_world(HeapState& heap);
void start_the_world(HeapState& heap, WorldStopped stopped);

// The cycle steps (testing.hpp exposes them one by one for deterministic drivers).
void begin_cycle(HeapState& heap);
bool flush_idle(HeapState& heap, unsigned i);
void ragged_barrier(HeapState& heap);
void collect(HeapState& heap);
// The ragged barrier's body. Requires: world.cycle_mu held by the caller.
void ragged_barrier_locked(HeapState& heap);
void flush_all(HeapState& heap);

// Stops the world, validates (validate.hpp), restarts. Requires: no heap call in progress on this
// thread.
VerifyResult verify_heap(HeapState& heap);

// Called after a heap call released its P: starts a cycle if pacing asked for one.
void maybe_collect(HeapState& heap);

std::uint64_t now_ns() noexcept;

}  // namespace spanheap::detail
