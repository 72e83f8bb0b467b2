// proc: see proc.hpp.
#include "proc.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

#if defined(__linux__)
#include <linux/membarrier.h>
#endif

#include "cache.hpp"
#include "heap_state.hpp"
#include "report.hpp"

namespace spanheap::detail {

// The thread's most recent heap, checked first: the common case is one heap per thread.
constinit thread_local ProcAffinity last_used_proc;
constinit thread_local ThreadRecord* this_thread_record = nullptr;
constinit thread_local unsigned callback_depth = 0;

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
  if (SPANHEAP_LIKELY(last_used_proc.uid() == heap.uid)) return last_used_proc.p;
  for (const Affinity& a : affinity)
    if (a.uid == heap.uid) return a.p;
  const std::size_t h = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return static_cast<unsigned>(h % heap.nprocs);
}

void remember(const HeapState& heap, unsigned p) noexcept {
  last_used_proc =
      ProcAffinity{ProcAffinity::make_key(heap.uid, ProcBinding::off), p, &heap.procs[p], nullptr};
  for (Affinity& a : affinity) {
    if (a.uid == heap.uid) {
      a.p = p;
      return;
    }
  }
  affinity[affinity_next++ % affinity_slots] = Affinity{heap.uid, p};
}

// Records for threads that may bind (types.hpp). Static: a revoker may read the record of a
// thread that has exited, and taking one must not allocate from a heap. Threads beyond the pool
// run unbound.
constexpr std::size_t max_thread_records = 4096;
ThreadRecord thread_records[max_thread_records];

// Gives the record back when its thread exits.
struct RecordReturner {
  bool armed = false;
  ~RecordReturner() {
    if (ThreadRecord* r = this_thread_record) {
      // Later calls of this thread (other thread-exit handlers free memory) take Ps by CAS.
      last_used_proc.set_bound(ProcBinding::off);
      last_used_proc.record = nullptr;
      this_thread_record = nullptr;
      r->used.store(false, std::memory_order_release);
    }
  }
};
thread_local RecordReturner record_returner;

// membarrier registration of this process: 0 not tried, 1 registered, 2 unavailable.
std::atomic<int> membarrier_state{0};

// Calls left before a P whose binding another thread revoked may be bound again: a thread that
// has to take a bound P (more threads than Ps) would otherwise pay a barrier at almost every call.
constexpr std::uint32_t bind_veto_calls = 256;

bool membarrier_register() noexcept {
#if defined(__linux__) && defined(SYS_membarrier)
  const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
  return false;
#endif
}

// The revoker's half of the handshake in enter_bound: after this returns, every thread of the
// process has executed a full barrier, so a binder either sees the revocation or is seen in_call.
void process_barrier(HeapState& heap) noexcept {
#if defined(__linux__) && defined(SYS_membarrier)
  const long r = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  SPANHEAP_CHECK(&heap, r == 0, "membarrier failed after its registration (P binding)");
#else
  SPANHEAP_CHECK(&heap, false, "P binding without membarrier");
#endif
}

// Sequentially consistent: the taker's half of the stop handshake, with keep_taken.
inline bool try_cas(ProcState& p, ProcStatus& seen) noexcept {
  seen = ProcStatus::idle;
  return p.status().compare_exchange_strong(seen, ProcStatus::running, std::memory_order_seq_cst,
                                            std::memory_order_relaxed);
}

// try_cas, then keep_taken: the P is ours only if the world is not stopping.
bool try_take(HeapState& heap, ProcState& p, ProcStatus& seen) noexcept {
  if (!try_cas(p, seen)) return false;
  protocol_point(heap, ProtocolPoint::took_idle_proc);
  return keep_taken(heap.world, p);
}

// Sleeps while the world is stopped (start_the_world wakes every sleeper).
void wait_for_restart(HeapState& heap) noexcept {
  heap.world.stopped.wait(true, std::memory_order_acquire);
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

// Takes a bound P from its binder (another thread, or this one outside any call on it).
bool try_revoke(HeapState& heap, ProcState& p) noexcept {
  if (!begin_revoke(p)) return false;
  ProcState* one = &p;
  finish_revokes(heap, &one, 1, ProcStatus::running);
  p.bind_veto = bind_veto_calls;
  return true;
}

// Acquires one of procs[first, first+count), starting at `start`: an idle one if any, else a
// bound one (revoked), else it waits.
ProcState& acquire_among(HeapState& heap, unsigned first, unsigned count, unsigned start) {
  unsigned spins = 0;
  for (;;) {
    ProcStatus seen = ProcStatus::idle;
    bool any_bound = false;
    for (unsigned k = 0; k < count; k++) {
      ProcState& p = heap.proc(first + (start + k) % count);
      if (try_take(heap, p, seen)) return p;
      any_bound |= seen == ProcStatus::bound;
    }
    if (any_bound) {
      for (unsigned k = 0; k < count; k++) {
        ProcState& p = heap.proc(first + (start + k) % count);
        if (try_revoke(heap, p) && keep_taken(heap.world, p)) return p;
      }
    }
    // Stopped: no P can be kept until the restart (keep_taken gave back any we took), so sleep.
    if (heap.world.stopped.load(std::memory_order_acquire)) {
      wait_for_restart(heap);
      continue;
    }
    backoff(spins);
  }
}

// The calling thread's own binding of P `p`, left behind when it called another heap (nothing
// revokes a binding when its thread switches heaps): taken back for this call as a revoke would,
// without the barrier (our own stores are ordered) and without the veto a revoke by another
// thread sets, so that the call binds it again rather than binding a second P. Not from inside a
// call: finish_revokes cannot take our own binding while we may be inside a bound call on it.
bool take_own_binding(HeapState& heap, ProcState& p) noexcept {
  ThreadRecord* const me = this_thread_record;
  if (me == nullptr || p.binder.load(std::memory_order_relaxed) != me ||
      me->in_call.load(std::memory_order_relaxed) != 0 || !begin_revoke(p))
    return false;
  ProcState* one = &p;
  finish_revokes(heap, &one, 1, ProcStatus::running);
  return keep_taken(heap.world, p);
}

}  // namespace

ProcState& acquire_any_proc_slow(HeapState& heap) {
  if (heap.binding != ProcBinding::off) ensure_thread_record();  // before we hold a P
  const unsigned start = preferred_proc(heap);
  ProcState& p = take_own_binding(heap, heap.proc(start))
                     ? heap.proc(start)
                     : acquire_among(heap, 0, heap.nprocs, start);
  if (SPANHEAP_UNLIKELY(last_used_proc.uid() != heap.uid || p.index != start))
    remember(heap, p.index);
  prepare(heap, p);
  return p;
}

bool prefer_proc(const HeapState& heap, unsigned i) noexcept {
  if (i >= heap.nprocs || last_used_proc.uid() == heap.uid) return false;
  for (const Affinity& a : affinity)
    if (a.uid == heap.uid) return false;
  // As acquire_any_proc_slow would on the thread's first call, which now takes the P by its
  // affinity instead: without a record the thread would never bind.
  if (heap.binding != ProcBinding::off) ensure_thread_record();
  remember(heap, i);
  return true;
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

void ensure_thread_record() noexcept {
  if (SPANHEAP_LIKELY(this_thread_record != nullptr)) return;
  static thread_local bool tried = false;  // one scan per thread, and no re-entry from the handler
  if (tried) return;
  tried = true;
  for (ThreadRecord& r : thread_records) {
    bool expected = false;
    if (!r.used.load(std::memory_order_relaxed) &&
        r.used.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      // Release: a revoker that reads this 0 (the record's last binding may be the previous
      // thread's) synchronizes with that thread through our acquire of `used` above.
      r.in_call.store(0, std::memory_order_release);
      this_thread_record = &r;
      record_returner.armed = true;  // registers the thread-exit handler (it may allocate)
      return;
    }
  }
}

bool begin_revoke(ProcState& p) noexcept {
  ProcStatus expected = ProcStatus::bound;
  if (!p.status().compare_exchange_strong(expected, ProcStatus::revoking, std::memory_order_seq_cst,
                                          std::memory_order_relaxed))
    return false;
  // Before finish_revokes' barrier (or, fenced, in the sequentially consistent order before its
  // load of in_call): the binder's enter_bound reads this word after it writes in_call.
  p.entry.store(nullptr, std::memory_order_seq_cst);
  return true;
}

void finish_revokes(HeapState& heap, ProcState* const* ps, unsigned n, ProcStatus to) noexcept {
  // Our own binding needs no barrier: we are not inside a bound call (enter_bound refuses a
  // nested one), and our own stores are ordered.
  bool others = false;
  for (unsigned i = 0; i < n; i++)
    others |= ps[i]->binder.load(std::memory_order_relaxed) != this_thread_record;
  if (others && heap.binding == ProcBinding::automatic) process_barrier(heap);
  for (unsigned i = 0; i < n; i++) {
    ProcState& p = *ps[i];
    ThreadRecord* binder = p.binder.load(std::memory_order_relaxed);
    // Our own binding while we are inside a call: a callback of that call (CallbackScope) needs
    // the P it holds, or the one bound to us while we are in a call on another. Waiting for our
    // own call to end would never return.
    if (SPANHEAP_UNLIKELY(binder == this_thread_record &&
                          binder->in_call.load(std::memory_order_relaxed) != 0)) {
      constexpr const char* why =
          "a heap call from inside an error handler or hook needs the P bound to this thread, "
          "whose own call has not returned; give the heap more Ps or call it after the handler "
          "returns";
      report(&heap, ErrorKind::misuse, nullptr, "{}", why);
      report(nullptr, ErrorKind::misuse, nullptr, "{} (cannot continue)", why);  // aborts
    }
    unsigned spins = 0;
    // The binder may be inside a call on another P or heap: waiting for it is only slower.
    while (binder->in_call.load(std::memory_order_seq_cst) != 0) backoff(spins);
    if (binder == this_thread_record && last_used_proc.uid() == heap.uid &&
        last_used_proc.p == p.index)
      last_used_proc.set_bound(ProcBinding::off);
    SPANHEAP_DCHECK(&heap, p.entry.load(std::memory_order_relaxed) == nullptr,
                    "a revoked P still lets its binder enter (INV-B1)");
    p.binder.store(nullptr, std::memory_order_relaxed);
    heap.counters.revocations.fetch_add(1, std::memory_order_relaxed);
    p.status().store(to, std::memory_order_release);
  }
}

void leave_call(HeapState& heap, ProcState& p) noexcept {
  // Not from inside a callback: the key must stay unbound there (CallbackScope).
  if (heap.binding != ProcBinding::off && p.has_cache && callback_depth == 0 &&
      p.status().load(std::memory_order_relaxed) == ProcStatus::running) {
    if (p.bind_veto != 0) {
      p.bind_veto--;
    } else if (this_thread_record != nullptr && last_used_proc.uid() == heap.uid &&
               last_used_proc.p == p.index) {
      SPANHEAP_DCHECK(&heap, !cache_is_stale(heap.sg(), p.cache),
                      "binding a P whose cache is stale (INV-B1)");
      p.binder.store(this_thread_record, std::memory_order_relaxed);
      // Before the release store of bound: a revoker's CAS that sees bound then sees this too,
      // and its clearing of entry comes after it.
      p.entry.store(this_thread_record, std::memory_order_relaxed);
      last_used_proc.record = this_thread_record;
      last_used_proc.set_bound(heap.binding);
      p.status().store(ProcStatus::bound, std::memory_order_release);
      protocol_point(heap, ProtocolPoint::binding_published);
      return;
    }
  }
  release_proc(p);
}

ProcBinding resolve_binding(ProcBinding wanted) noexcept {
  if (wanted == ProcBinding::off) return ProcBinding::off;
#if SPANHEAP_TSAN
  // ThreadSanitizer does not see membarrier's ordering: the fenced handshake, which it checks.
  return ProcBinding::fenced;
#else
  if (wanted == ProcBinding::fenced) return ProcBinding::fenced;
  int state = membarrier_state.load(std::memory_order_acquire);
  if (state == 0) {
    state = membarrier_register() ? 1 : 2;
    membarrier_state.store(state, std::memory_order_release);
  }
  return state == 1 ? ProcBinding::automatic : ProcBinding::off;
#endif
}

bool rebind_after_fork() noexcept {
  if (membarrier_state.load(std::memory_order_relaxed) != 1) return true;
  if (membarrier_register()) return true;
  membarrier_state.store(2, std::memory_order_relaxed);
  return false;
}

ProcStatus settled_status(const ProcState& p) noexcept {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  ProcStatus s = p.status().load(std::memory_order_acquire);
  while (s == ProcStatus::running && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
    s = p.status().load(std::memory_order_acquire);
  }
  return s;
}

bool try_take_idle(HeapState& heap, ProcState& p) noexcept {
  ProcStatus seen;
  return try_take(heap, p, seen);
}

}  // namespace spanheap::detail
