// sweeper: how the rest of the heap waits for the sweep and runs it in the background (Go's
// mgcsweep.go around mspan.sweep): "sweep done", ensure-swept for free() (which may help flush an
// idle P, hence its rank above proc), and the background sweeper threads (which sweep in sweeper
// slots). The sweep itself (sweep_one, proportional sweep, the span-level sweep) is in sweep.hpp.
#pragma once

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Every span swept, no stale cache, no sweep in flight. Exact (see SweepState::active).
bool sweep_done(const HeapState& heap) noexcept;

// Makes `span` swept for this cycle before free() touches its object state (Go's ensureSwept):
// sweeps it if unswept, helps flush its stale owner if that P is idle, waits otherwise.
// Requires: the caller holds `self` (a P). Returns false if the span was freed or its struct
// recycled meanwhile, or if the caller's P had to be released and re-acquired so that a pending
// stop-the-world could proceed (the caller looks the pointer up again).
bool ensure_swept(HeapState& heap, Span* span, ProcState* self);

// Background sweeper threads. Requires: world.cycle_mu held (or the heap being destroyed).
// Starts threads until there are sweepers_wanted; a thread that cannot start is an out_of_memory
// report and lowers sweepers_wanted (the heap sweeps without it).
void start_background_sweepers(HeapState& heap);
void stop_background_sweepers(HeapState& heap);
// In a fork() child: drops the handles of the parent's sweepers, which do not exist here; the
// next wake starts the child's own.
void forget_background_sweepers(HeapState& heap);
// Wakes parked background sweepers (a cycle left work), starting any that are missing.
void wake_background_sweepers(HeapState& heap);

}  // namespace spanheap::detail
