// proc: Ps (Go's p). A thread acquires a P at the start of every heap call and releases it at the
// end; acquire performs the lazy flush. The world stops Ps that are idle; it never waits for a
// thread that is outside the heap.
#pragma once

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Acquires some P for the calling thread (its last one if free, else any free one), waiting while
// the world is stopped. Flushes the P's cache if it is stale before returning.
ProcState& acquire_any_proc_slow(HeapState& heap);
// The calling thread's last P for its last heap (see proc.cpp).
struct ProcAffinity {
  std::uint64_t uid = 0;
  unsigned p = 0;
};
extern constinit thread_local ProcAffinity last_used_proc;
// Acquires P `i` specifically (explicit Proc handles), waiting while it is busy or stopped.
ProcState& acquire_proc(HeapState& heap, unsigned i);
// Acquires a sweeper slot (a P without a cache): blocks the world like a P does.
ProcState& acquire_sweep_slot(HeapState& heap);
// Takes P `i` if it is idle right now (the ragged barrier / a freer helping a stale owner).
// Does not flush. Returns false if it is busy or stopped.
bool try_take_idle(HeapState& heap, ProcState& p) noexcept;
inline void release_proc(ProcState& p) noexcept {
  p.status.store(ProcStatus::idle, std::memory_order_release);
}

// RAII holder for an acquired P.
class ProcGuard {
 public:
  explicit ProcGuard(ProcState& p) noexcept : p_(p) {}
  ~ProcGuard() { release_proc(p_); }
  ProcGuard(const ProcGuard&) = delete;
  ProcGuard& operator=(const ProcGuard&) = delete;
  ProcState& proc() const noexcept { return p_; }

 private:
  ProcState& p_;
};

}  // namespace spanheap::detail
