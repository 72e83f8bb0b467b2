// proc: Ps (Go's p). A thread acquires a P at the start of every heap call and releases it at the
// end; acquire performs the lazy flush. The world stops Ps that are idle; it never waits for a
// thread that is outside the heap. A thread may keep (bind) its P between calls: see types.hpp
// and docs/design.md "P binding".
#pragma once

#include <atomic>
#include <type_traits>

#include "affinity.hpp"
#include "atomic_read.hpp"
#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Acquires some P for the calling thread (its last one if free, else any free one), waiting while
// the world is stopped. Flushes the P's cache if it is stale before returning.
ProcState& acquire_any_proc_slow(HeapState& heap);
// Makes P `i` the calling thread's first choice for `heap` (its affinity, as if it had used P `i`
// last) instead of the hash of its id, which differs between processes. False, and nothing
// changed, when `i` is not a P or the thread has already used the heap: its affinity (or binding)
// is then the heap's own business.
bool prefer_proc(const HeapState& heap, unsigned i) noexcept;
// Gives the calling thread a record if it has none and one is free; call it holding no P (it may
// register a thread-exit handler, which may allocate). A thread without a record never binds.
void ensure_thread_record() noexcept;

// Enters P `p` through the calling thread's binding of kind `mode` (last_used_proc.bound(), not
// off); `me` is the thread's record (this_thread_record, or last_used_proc.record while bound).
// True: the thread is inside a call on `p` and leaves with release_proc or leave_bound(me). False:
// the binding is gone (revoked, or the thread is already inside a bound call); the thread must
// acquire a P. The store of in_call and the load of ProcState::entry are the two halves of a Dekker
// handshake whose other halves are in begin_revoke and finish_revokes (proc.cpp): under
// ProcBinding::automatic the revoker's membarrier orders them, so this side needs only a compiler
// barrier; under fenced both sides are sequentially consistent. `entry` names this thread only
// while the P is bound to it, so it stands for "status is bound and binder is me" in one load. A
// bool rather than a nullable record, so that a caller inlining it with a constant `mode` branches
// on the entry itself, not on a second test of the pointer.
// `may_be_nested`: false only where the thread's key is its heap's bound_key, which a thread inside
// a call never holds while anything can call the heap from inside that call (CallbackScope): the
// bound fast paths then skip the test for a nested call (three instructions a call), and the debug
// tier checks it there instead (check_not_nested).
[[gnu::always_inline]] inline bool enter_bound(ProcBinding mode, ProcState& p, ThreadRecord* me,
                                               bool may_be_nested = true) noexcept {
  if (may_be_nested && SPANHEAP_UNLIKELY(me->in_call.load(std::memory_order_relaxed) != 0))
    return false;
  if (mode == ProcBinding::automatic) {
    me->in_call.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // Relaxed: only this thread sets entry to itself (leave_call), so what the P holds was
    // written by this thread or published to it by the CAS that took the P before it bound it.
    if (SPANHEAP_LIKELY(relaxed_equals(p.entry, me))) return true;
  } else {
    me->in_call.store(1, std::memory_order_seq_cst);
    if (p.entry.load(std::memory_order_seq_cst) == me) return true;
  }
  me->in_call.store(0, std::memory_order_release);
  last_used_proc.set_bound(ProcBinding::off);
  return false;
}
// Leaves a call entered through enter_bound, which returned `me` (the fast paths keep it in a
// register rather than load the thread-local again).
inline void leave_bound(ThreadRecord* me = this_thread_record) noexcept {
  me->in_call.store(0, std::memory_order_release);
}

// The taker's half of the stop handshake (stop_the_world, world.cpp): a P taken from idle with a
// CAS is kept only if the world is not stopping. The stop does not take idle Ps: it publishes
// world.stopped and reads each status. The CAS and this load are sequentially consistent, as are
// the stopper's store and its reads, so either the stopper reads the P running and waits for it,
// or the taker reads the world stopping and gives the P back, having touched nothing of it.
// Returns false after giving it back; the caller then waits for the restart (acquire_among).
[[gnu::always_inline]] inline bool keep_taken(const World& world, ProcState& p) noexcept {
  if (SPANHEAP_LIKELY(!world.stopped.load(std::memory_order_seq_cst))) return true;
  p.status().store(ProcStatus::idle, std::memory_order_release);
  return false;
}

// P `p`'s status with the world stopped (the verifier's INV-B1 / INV-W1 check). A thread may hold
// it running for a moment: it took the P with its CAS after the stopper read it idle, and gives it
// back as soon as it reads the world stopping (keep_taken). This waits that moment out (up to a
// second: a few instructions, unless the thread is descheduled); a P still running then is one
// the stop did not wait for.
ProcStatus settled_status(const ProcState& p) noexcept;

// Acquires P `i` specifically (explicit Proc handles), waiting while it is busy or stopped.
ProcState& acquire_proc(HeapState& heap, unsigned i);
// Acquires a sweeper slot (a P without a cache): blocks the world like a P does.
ProcState& acquire_sweep_slot(HeapState& heap);
// Takes P `i` if it is idle right now (the ragged barrier / a freer helping a stale owner).
// Does not flush. Returns false if it is busy or stopped.
bool try_take_idle(HeapState& heap, ProcState& p) noexcept;
// Leaves the P the caller holds: taken with a CAS (running -> idle), or entered through the
// caller's binding (in_call = 0; status is bound, or revoking while a revoker waits for us).
inline void release_proc(ProcState& p) noexcept {
  if (SPANHEAP_LIKELY(p.status().load(std::memory_order_relaxed) == ProcStatus::running)) {
    p.status().store(ProcStatus::idle, std::memory_order_release);
  } else {
    leave_bound();
  }
}
// release_proc at the end of a call that took any P (the thread's own): a P taken with a CAS is
// bound to the calling thread instead of released when binding is on and the P is the thread's
// affinity. Returns through release_proc otherwise.
void leave_call(HeapState& heap, ProcState& p) noexcept;
// Revocation of a binding, first half: bound -> revoking. True if `p` was bound; the caller must
// then finish it (finish_revokes), and nobody else can take `p` meanwhile.
bool begin_revoke(ProcState& p) noexcept;
// Second half, for `n` Ps begun together: one process-wide barrier, then a wait for each binder
// to leave the call it may be in. Each P ends with status `to` (running or stopped), held by the
// caller, never bound again by the same binding.
void finish_revokes(HeapState& heap, ProcState* const* ps, unsigned n, ProcStatus to) noexcept;
// Resolves Options::binding for a new heap: registers the process for membarrier once.
ProcBinding resolve_binding(ProcBinding wanted) noexcept;
// After fork(), in the child: the registration is redone (the child's address space is new).
// False: the child cannot use membarrier, and its heaps must stop binding (fork.cpp).
bool rebind_after_fork() noexcept;

// The heap as a bound fast path holds it: through its P (ProcState::heap), converted where a slow
// exit or a debug check needs it. The load is relaxed atomic so that the compiler leaves it where
// it is written: a plain one it hoisted above the branches, and the free fast path then kept the
// heap in a register on every call (a push and a pop). Functions that take the heap on a fast
// path take this type too (FastHeap) and convert on their cold side only.
struct ProcHeap {
  ProcState& p;
  operator HeapState&() const noexcept { return *p.heap.load(std::memory_order_relaxed); }
};
template <bool bound>
using FastHeap = std::conditional_t<bound, ProcHeap, HeapState&>;
inline HeapState& as_heap(HeapState& heap) noexcept { return heap; }
inline HeapState& as_heap(ProcHeap heap) noexcept { return heap; }

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
