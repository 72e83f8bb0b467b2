// proc: Ps (Go's p). A thread acquires a P at the start of every heap call and releases it at the
// end; acquire performs the lazy flush. The world stops Ps that are idle; it never waits for a
// thread that is outside the heap. A thread may keep (bind) its P between calls: see types.hpp
// and docs/design.md "P binding".
#pragma once

#include <atomic>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Acquires some P for the calling thread (its last one if free, else any free one), waiting while
// the world is stopped. Flushes the P's cache if it is stale before returning.
ProcState& acquire_any_proc_slow(HeapState& heap);
// The calling thread's last P for its last heap (see proc.cpp) and whether the thread bound it,
// with which handshake (the heap's binding when it bound: the fast paths read it here, with the
// rest of this struct, rather than in the heap).
struct ProcAffinity {
  // The heap's uid and the binding in one word, `uid << 2 | bound`: a thread bound automatically
  // to a P of heap h holds exactly h's HeapState::bound_key, so the fast paths test "this heap,
  // bound, with the default handshake" with one compare. uid 0 names no heap.
  std::uint64_t key = static_cast<std::uint64_t>(ProcBinding::off);
  unsigned p = 0;
  // &heap.proc(p), valid while the uid matches a live heap (uids are never reused): the fast
  // paths load it instead of indexing the heap's P array (a multiply and two adds on every call).
  ProcState* state = nullptr;
  // this_thread_record while the thread is bound (set where it binds): the bound fast paths read
  // it here, beside the key, rather than from a second thread-local.
  ThreadRecord* record = nullptr;

  static constexpr std::uint64_t make_key(std::uint64_t uid, ProcBinding b) noexcept {
    return uid << 2 | static_cast<std::uint64_t>(b);
  }
  std::uint64_t uid() const noexcept { return key >> 2; }
  ProcBinding bound() const noexcept { return static_cast<ProcBinding>(key & 3); }
  void set_bound(ProcBinding b) noexcept { key = make_key(uid(), b); }
};
static_assert(static_cast<unsigned>(ProcBinding::automatic) < 4 &&
                  static_cast<unsigned>(ProcBinding::fenced) < 4 &&
                  static_cast<unsigned>(ProcBinding::off) < 4,
              "ProcAffinity::key keeps the binding in two bits");
extern constinit thread_local ProcAffinity last_used_proc;
// The calling thread's record (types.hpp), nullptr until ensure_thread_record gives it one.
extern constinit thread_local ThreadRecord* this_thread_record;
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
[[gnu::always_inline]] inline bool enter_bound(ProcBinding mode, ProcState& p,
                                               ThreadRecord* me) noexcept {
  if (SPANHEAP_UNLIKELY(me->in_call.load(std::memory_order_relaxed) != 0)) return false;
  if (mode == ProcBinding::automatic) {
    me->in_call.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // Relaxed: only this thread sets entry to itself (leave_call), so what the P holds was
    // written by this thread or published to it by the CAS that took the P before it bound it.
    if (SPANHEAP_LIKELY(p.entry.load(std::memory_order_relaxed) == me)) return true;
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
  if (SPANHEAP_LIKELY(p.status.load(std::memory_order_relaxed) == ProcStatus::running)) {
    p.status.store(ProcStatus::idle, std::memory_order_release);
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
