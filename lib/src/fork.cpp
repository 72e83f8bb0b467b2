// fork: see fork.hpp.
#include "fork.hpp"

#include <pthread.h>

#include "heap_state.hpp"
#include "page_map.hpp"
#include "proc.hpp"
#include "sweeper.hpp"
#include "world.hpp"

namespace spanheap::detail {
namespace {

RankedMutex heaps_mu{LockRank::heaps};
HeapState* heaps_first GUARDED_BY(heaps_mu) = nullptr;

// In the child: a P that another thread of the parent had just taken when the fork happened, and
// was about to give back because the world was stopping (keep_taken), has no thread to give it
// back. The stop waited for every other running P, and the child's one thread holds none.
void forget_takers(HeapState& heap) {
  for (unsigned i = 0; i < heap.nslots; i++) {
    ProcState& p = heap.proc(i);
    if (p.status().load(std::memory_order_relaxed) == ProcStatus::running)
      p.status().store(ProcStatus::idle, std::memory_order_relaxed);
  }
}

// The handlers walk the list with heaps_mu held from prepare to parent/child; the analysis cannot
// follow a lock taken in one function and released in another.
void prepare() NO_THREAD_SAFETY_ANALYSIS {
  heaps_mu.lock_for_fork();
  for (HeapState* h = heaps_first; h != nullptr; h = h->fork_next) {
    h->world.cycle_mu.lock_for_fork();
    h->fork_stopped.emplace(stop_the_world(*h));
  }
  registry_lock_for_fork();
}

void release_all(bool child) NO_THREAD_SAFETY_ANALYSIS {
  registry_unlock_after_fork();
  // The child's membarrier registration is redone; if it fails, its heaps stop binding (every
  // binding was revoked by prepare's stop-the-world, and the child has one thread).
  const bool can_bind = !child || rebind_after_fork();
  for (HeapState* h = heaps_first; h != nullptr; h = h->fork_next) {
    if (!can_bind && h->binding == ProcBinding::automatic) h->binding = ProcBinding::off;
    if (child) {
      forget_background_sweepers(*h);
      forget_takers(*h);
    }
    start_the_world(*h, std::move(*h->fork_stopped));
    h->fork_stopped.reset();
    h->world.cycle_mu.unlock_after_fork();
  }
  heaps_mu.unlock_after_fork();
}

void parent() { release_all(/*child=*/false); }
void child() { release_all(/*child=*/true); }

// Registered when the library is loaded, not at the first heap: a malloc replacement creates its
// heap from inside malloc, where pthread_atfork (which may allocate) must not be re-entered.
[[maybe_unused]] const int atfork_registered = pthread_atfork(prepare, parent, child);

}  // namespace

void fork_register(HeapState& heap) {
  LockGuard g(heaps_mu);
  heap.fork_prev = nullptr;
  heap.fork_next = heaps_first;
  if (heaps_first != nullptr) heaps_first->fork_prev = &heap;
  heaps_first = &heap;
}

void fork_unregister(HeapState& heap) {
  LockGuard g(heaps_mu);
  if (heap.fork_prev != nullptr) {
    heap.fork_prev->fork_next = heap.fork_next;
  } else {
    heaps_first = heap.fork_next;
  }
  if (heap.fork_next != nullptr) heap.fork_next->fork_prev = heap.fork_prev;
  heap.fork_prev = heap.fork_next = nullptr;
}

}  // namespace spanheap::detail
