// affinity: the calling thread's P affinity (which heap and P it used last, and whether it keeps
// that P bound between calls) and the scope a callback runs in. The bottom of the library: the
// error reports and the protocol hooks, which run callbacks, need the scope, and the fast paths
// read the affinity first thing. Acquiring and binding Ps is proc's.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstdint>

namespace spanheap::detail {

struct ProcState;
struct ThreadRecord;

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
// How many CallbackScopes the calling thread is inside (leave_call binds no P while it is not 0).
extern constinit thread_local unsigned callback_depth;

// Runs a callback that may call the heap from inside a call of this thread: the error handler and
// the protocol hooks. For its duration the thread's key holds no binding and no call binds a P
// (leave_call), so every call the callback makes takes a path that tests for a nested call and
// refuses to enter the P the outer call holds; the thread's affinity is restored at the end. Were
// the key left bound, a nested call would enter the outer call's P from the bound fast path, and
// its exit would clear the outer call's in_call, letting a revoker take the P from under it.
class CallbackScope {
 public:
  CallbackScope() noexcept : saved_(last_used_proc) {
    callback_depth++;
    if (last_used_proc.bound() != ProcBinding::off) last_used_proc.set_bound(ProcBinding::off);
  }
  // The saved key may have gone stale meanwhile (a nested stop-the-world revoked the binding): a
  // stale key costs the next call a failed entry, never a wrong one (enter_bound tests the entry).
  ~CallbackScope() {
    last_used_proc = saved_;
    callback_depth--;
  }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  ProcAffinity saved_;
};

}  // namespace spanheap::detail
