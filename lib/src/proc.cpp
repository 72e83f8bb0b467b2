// proc: see proc.hpp.
#include "proc.hpp"

#include <functional>
#include <thread>

#include "cache.hpp"
#include "heap_state.hpp"

namespace spanheap::detail {

// The thread's most recent heap, checked first: the common case is one heap per thread.
constinit thread_local ProcAffinity last_used_proc;

namespace {

// A thread's last P per heap (its affinity), keyed by the heap's never-reused uid.
struct Affinity {
  std::uint64_t uid = 0;
  unsigned p = 0;
};
constexpr unsigned affinity_slots = 4;
thread_local Affinity affinity[affinity_slots];
thread_local unsigned affinity_next = 0;

unsigned preferred_proc(const HeapState& heap) noexcept {
  if (SPANHEAP_LIKELY(last_used_proc.uid == heap.uid)) return last_used_proc.p;
  for (const Affinity& a : affinity)
    if (a.uid == heap.uid) return a.p;
  const std::size_t h = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return static_cast<unsigned>(h % heap.nprocs);
}

void remember(const HeapState& heap, unsigned p) noexcept {
  last_used_proc = ProcAffinity{heap.uid, p};
  for (Affinity& a : affinity) {
    if (a.uid == heap.uid) {
      a.p = p;
      return;
    }
  }
  affinity[affinity_next++ % affinity_slots] = Affinity{heap.uid, p};
}

inline bool try_cas(ProcState& p, ProcStatus& seen) noexcept {
  seen = ProcStatus::idle;
  return p.status.compare_exchange_strong(seen, ProcStatus::running, std::memory_order_acquire,
                                          std::memory_order_relaxed);
}

// Go's acquirep -> prepareForSweep: a P flushes a stale cache before it can allocate.
inline void prepare(HeapState& heap, ProcState& p) {
  if (p.has_cache && SPANHEAP_UNLIKELY(cache_is_stale(heap.sg(), p.cache)))
    cache_flush(heap, p, FlushKind::lazy);
}

void backoff(unsigned& spins) noexcept {
  if (++spins < 16) return;
  std::this_thread::yield();
}

// Acquires one of procs[first, first+count), starting at `start`.
ProcState& acquire_among(HeapState& heap, unsigned first, unsigned count, unsigned start) {
  unsigned spins = 0;
  for (;;) {
    ProcStatus seen = ProcStatus::idle;
    for (unsigned k = 0; k < count; k++) {
      ProcState& p = heap.proc(first + (start + k) % count);
      if (try_cas(p, seen)) return p;
    }
    if (seen == ProcStatus::stopped) {
      // The world is stopped: sleep until it restarts.
      ProcState& p = heap.proc(first + start % count);
      p.status.wait(ProcStatus::stopped, std::memory_order_acquire);
      continue;
    }
    backoff(spins);
  }
}

}  // namespace

ProcState& acquire_any_proc_slow(HeapState& heap) {
  const unsigned start = preferred_proc(heap);
  ProcState& p = acquire_among(heap, 0, heap.nprocs, start);
  if (SPANHEAP_UNLIKELY(last_used_proc.uid != heap.uid || p.index != start))
    remember(heap, p.index);
  prepare(heap, p);
  return p;
}

ProcState& acquire_proc(HeapState& heap, unsigned i) {
  ProcState& p = acquire_among(heap, i, 1, 0);
  prepare(heap, p);
  return p;
}

ProcState& acquire_sweep_slot(HeapState& heap) {
  const unsigned slots = heap.nslots - heap.nprocs;
  const std::size_t h = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return acquire_among(heap, heap.nprocs, slots, static_cast<unsigned>(h % slots));
}

bool try_take_idle(HeapState& heap, ProcState& p) noexcept {
  (void)heap;
  ProcStatus seen;
  return try_cas(p, seen);
}

}  // namespace spanheap::detail
