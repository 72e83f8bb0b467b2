// fork: keeps every live heap usable across fork() (pthread_atfork), as glibc's malloc and
// jemalloc do for theirs. See docs/design.md §"fork".
//
// prepare (in the parent, before the fork), for every heap in the process-wide list, in lock-rank
// order over all heaps: take cycle_mu and stop the world (waits for the Ps inside heap calls and
// for background sweepers to give their slots back), then every central lock, then the page heap
// lock; finally the arena registry lock. The fork therefore copies heaps that are quiescent: no P
// running, no sweep in flight, no lock held by a thread that the child will not have.
// parent: release everything in reverse and restart each world.
// child: the same, after dropping the handles of the parent's sweeper threads; the child starts
// its own at its first cycle (wake_background_sweepers), so a child that execs pays nothing.
//
// Not supported: fork() from inside a heap call (an error handler called with a P held), which
// would wait for itself.
#pragma once

namespace spanheap::detail {

class HeapState;

// Adds / removes a heap from the list the fork handlers walk. Requires: no heap lock held.
void fork_register(HeapState& heap);
void fork_unregister(HeapState& heap);

}  // namespace spanheap::detail
