// The roles every driver is assembled from: a mutator (owns objects, allocates, frees, checks
// content, hands objects to other threads through shared slots), a collector (forces cycles), a
// verifier (verify() plus an independent check of the span-state snapshot) and a sweeper loop
// (sweep_one()). Drivers pick the mix; docs/stress.md says which driver runs which.
#pragma once

#include "content.hpp"
#include "harness.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spanheap::stress {

// Shared hand-over slots: an object put into a slot belongs to whoever takes it out. The exchange
// is acq_rel, so the taker sees the content the giver wrote (and nothing else publishes it).
class Slots {
 public:
  explicit Slots(std::size_t n) : slots_(n) {}
  std::size_t size() const { return slots_.size(); }
  void* exchange(std::size_t i, void* p) {
    return slots_[i].exchange(p, std::memory_order_acq_rel);
  }
  // Takes every object out, checks and frees it; returns how many were freed. World quiet.
  std::uint64_t drain(Run& run, Heap& heap, Tally& tally, std::atomic<std::uint64_t>& leaked);

 private:
  std::vector<std::atomic<void*>> slots_;
};

struct MutatorMix {
  // Percent of steps (the rest are content checks of a random held object).
  unsigned alloc = 50;
  unsigned free = 30;
  unsigned transfer = 10;
  std::size_t max_held = 1000;       // held objects above this are freed before allocating
  unsigned large_per_mille = 10;     // large objects among allocations
  unsigned proc_handle_percent = 0;  // steps done through an explicit heap.proc(i) handle
  // Allocations through allocate_zeroed (calloc's call), each checked for zeroes before the
  // object is filled: reused slots hold the previous object's content, so a missed clear shows.
  unsigned zeroed_percent = 10;
};

class Mutator {
 public:
  Mutator(Run& run, Heap& heap, Slots* slots, std::uint64_t stream, MutatorMix mix,
          std::atomic<std::uint64_t>& leaked);
  ~Mutator();

  // One random operation. Returns false once the run has failed.
  bool step();
  // Allocates one object (used right after waking from a sleep: the acquire must flush lazily).
  bool allocate_one();
  // Allocates one object of the given size and alignment and holds it.
  bool allocate_sized(std::size_t size, std::size_t align = 16);
  // Frees one held object (after checking it); false if none is held.
  bool free_one();
  // Gives one held object to `slots` (cross-thread free by whoever takes it); may receive one.
  bool transfer_one(Slots& slots);
  // Checks and frees everything held.
  void free_all();
  std::size_t held() const { return held_.size(); }
  // Publishes the local counters.
  void publish(SharedTally& shared) { shared.add(tally_); }
  Rng& rng() { return rng_; }
  Tally& tally() { return tally_; }

  // Hands one held object out (no check), e.g. to a survivor array; nullptr when none qualifies.
  void* give_away();
  // Takes an object produced by give_away() on another thread (checks its header and content).
  bool adopt(void* p);

 private:
  bool check_obj(const Obj& o);
  bool release(Obj o);  // check + free
  void* do_alloc(std::size_t size, std::size_t align);
  void check_zeroed(const void* p, std::size_t size, std::size_t align);
  void do_free(void* p);

  Run& run_;
  Heap& heap_;
  Slots* slots_;
  Rng rng_;
  MutatorMix mix_;
  std::atomic<std::uint64_t>& leaked_;
  std::vector<Obj> held_;
  Tally tally_;
};

// Forces cycles until the run stops. fast: back to back; otherwise after random gaps around
// cfg.stw_every_us. split: sometimes run the cycle as begin_cycle(), a gap, ragged_barrier(), so
// Ps stay stale for a while and must flush themselves at acquire.
void collector_loop(Run& run, Heap& heap, std::uint64_t stream, bool fast, bool split,
                    PauseLog& log);

// Every cfg.verify_every_ms: verify() (must find nothing) and, alternately, a snapshot checked by
// the oracle library's snapshot checker (oracle/snapshot_check.hpp), which adds to verify()'s
// rules what only a whole snapshot shows (P table, one span per class per P, coalescing).
void verifier_loop(Run& run, Heap& heap);

// sweep_one() in a loop, yielding when it finds nothing.
void sweeper_loop(Run& run, Heap& heap, SharedTally& tally);

}  // namespace spanheap::stress
