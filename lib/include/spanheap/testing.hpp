// spanheap/testing.hpp: the one header through which tests, fuzzers, property tests and stress
// drivers reach the heap's internals — a fake OS memory with failure injection, a recording error
// handler, fine-grained cycle steps for deterministic drivers, and snapshots of span and P state.
// Nothing here is needed to use the heap; everything here is safe to call from a test.
#pragma once

#include <spanheap/invariants.hpp>
#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace spanheap::testing {

// ---------------------------------------------------------------------------------------------
// Fake OS memory: real memory underneath (system_memory() unless another layer is given, so
// memory is usable), deterministic failure injection and exact accounting on top. Thread-safe.
class FakeOsMemory final : public OsMemory {
 public:
  FakeOsMemory() noexcept : under_(system_memory()) {}
  explicit FakeOsMemory(OsMemory& under) noexcept : under_(under) {}

  void* reserve(std::size_t size, std::size_t align) override;
  bool commit(void* p, std::size_t size) override;
  void release(void* p, std::size_t size) override;
  void unreserve(void* p, std::size_t size) override;
  void advise_huge_pages(void* p, std::size_t size) override;  // recorded, then passed on
  // The layer underneath's: the fake changes no byte and no poison of the memory it passes on.
  bool keeps_poison() const noexcept override { return under_.keeps_poison(); }

  // Fail the next `n` reserve (or commit) calls.
  void fail_reserves(unsigned n);
  void fail_commits(unsigned n);
  // Fail every commit that would take committed bytes above `bytes` (0 = no cap).
  void cap_committed(std::size_t bytes);

  std::size_t reserved_bytes() const;
  std::size_t committed_bytes() const;  // committed and not yet unreserved
  std::size_t released_bytes() const;   // cumulative bytes passed to release()
  unsigned reserve_calls() const;
  unsigned commit_calls() const;
  unsigned failures() const;  // calls that were made to fail
  struct Range {
    std::uintptr_t base;
    std::size_t size;
  };
  std::vector<Range> huge_page_advice() const;      // every advise_huge_pages call, in order
  std::vector<std::size_t> reserve_aligns() const;  // the alignment each reserve call asked for

 private:
  OsMemory& under_;
  mutable std::mutex mu_;
  unsigned fail_reserves_ = 0;
  unsigned fail_commits_ = 0;
  std::size_t cap_ = 0;
  std::size_t reserved_ = 0;
  std::size_t committed_ = 0;
  std::size_t released_ = 0;
  unsigned reserve_calls_ = 0;
  unsigned commit_calls_ = 0;
  unsigned failures_ = 0;
  std::vector<Range> advice_;
  std::vector<std::size_t> aligns_;
  struct Region {
    std::uintptr_t base;
    std::size_t size;
    std::size_t committed;
  };
  std::vector<Region> regions_;
};

// ---------------------------------------------------------------------------------------------
// An error handler that records every report and returns (so the heap carries on).
class RecordingHandler {
 public:
  ErrorHandler handler();           // bind into Options::error_handler; must outlive the heap
  std::vector<ErrorReport> take();  // returns and clears what was recorded
  std::size_t count() const;
  std::size_t count(ErrorKind kind) const;
  std::optional<ErrorReport> last() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::vector<ErrorReport> reports_;
};

// ---------------------------------------------------------------------------------------------
// Deterministic cycle steps. collect() == begin_cycle() followed by ragged_barrier().
// All of these must be called from outside any heap call.

// Stop the world, finish the previous cycle (flush every still-stale P, sweep every unswept span),
// bump sweepgen by 2 (flushing every cache first under FlushPolicy::eager), restart the world.
// Leaves stale caches for the Ps to flush lazily (at their next acquire) or for ragged_barrier().
void begin_cycle(Heap& heap);
// Flush P `i` as the ragged barrier would if it is idle and stale; true if it flushed.
bool flush_idle(Heap& heap, unsigned i);
// The whole ragged barrier: every stale P is flushed before this returns.
void ragged_barrier(Heap& heap);
// Stop the world and return every cached span of every P to central (Go's flushallmcaches, as
// ReadMemStats does; the scenario of Go #57523). Stale spans are swept by this flush.
void flush_all(Heap& heap);
// One step of proportional sweep as an allocating P would be charged for `bytes` of allocation:
// returns the number of spans swept.
unsigned proportional_sweep(Heap& heap, std::size_t bytes);
// "Sweep done": every span swept for this cycle, no sweeper active and no stale cache left.
bool sweep_done(const Heap& heap);

// Protocol points at which another thread could observe the heap mid-transition. A hook set with
// set_protocol_hook runs on the thread doing the transition, at that point; tests use it to check
// what an observer would see there ("sweep done" must be false mid-flush and mid-sweep: Go
// #45315/#46500). Set it only while no heap call runs; pass an empty function to remove it.
enum class ProtocolPoint : std::uint8_t {
  sweep_owned,            // a span is owned (sg-1), its sweep not yet published
  flush_released_span,    // a flushing P has returned one cached span, others may remain
  page_free_begin,        // a swept, emptied span is about to be returned to the page heap
  free_move_to_partial,   // a free found a swept full span worth collecting and released its
                          // free_lock; it has not yet taken central's lock to move the span
  find_object_span_read,  // Heap::find_object found an in-use span and is about to read its
                          // fields (runs on the classifying thread)
  stop_found_idle_proc,   // a stop-the-world read a P as idle and has not yet taken it (runs
                          // on the stopping thread; another thread may still take that P)
  binding_published,      // a call that took its P with a CAS has bound it to its thread (status
                          // bound, so another thread may revoke it now) and not yet returned
  took_idle_proc,         // a thread took an idle P with its CAS (Proc handles, sweeper slots,
                          // a freer helping a stale owner) and has not yet read whether the world
                          // is stopping: a stop begun meanwhile waits for it or sees it give the
                          // P back (runs on the taking thread)
  find_object_between_loads,  // Heap::find_object has read a slot's free_index and not yet its
                              // allocation bit, with the page heap lock held (runs on the
                              // classifying thread; a lazy flush may sweep the span meanwhile)
  remote_free_before_lock,    // a fast-path free into a span another P caches has read the
                              // span unlocked and not yet taken its free_lock: the owner may
                              // uncache it, or its struct be recycled, meanwhile (runs on the
                              // freeing thread, holding its P)
  remote_free_recorded,       // a fast-path free into a span some P caches has recorded the free
                              // (bit, counters, poisoning) and released free_lock if it took it;
                              // the owner may now collect the slot and hand it out again (runs
                              // on the freeing thread, holding its P)
  home_arena_copied,          // the heap's first allocation has claimed the publication of the
                              // free fast path's home arena and written its copies, and not yet
                              // named the arena (runs on the allocating thread, holding its P)
  home_arena_published,       // the heap's first allocation has named its arena as the one the
                              // free fast path looks in first: other threads' frees may now read
                              // it (runs on the allocating thread, holding its P)
};
// `only`: the points that call the hook (every point when empty); at the others the heap does not
// call it at all (find_object passes one on every call).
void set_protocol_hook(Heap& heap, std::function<void(ProtocolPoint)> hook,
                       std::initializer_list<ProtocolPoint> only = {});
// The heap's Options::binding as resolved at construction (automatic without membarrier is off,
// a ThreadSanitizer build's automatic is fenced), and whether P `i` is bound to a thread now.
ProcBinding binding(const Heap& heap);
bool proc_bound(const Heap& heap, unsigned i);
// Makes P `i` the P the calling thread takes first when it calls `heap` through the facade
// (Heap::allocate, free, ...), as if it had used P `i` last; by default a thread's first choice
// is a hash of its id, which differs from one process to the next. A single-threaded driver (the
// fuzz executor) calls it on a fresh heap so that a program meets the same P in every process.
// False, and nothing changed, when `i` is not below procs() or the calling thread has already
// called the heap.
bool prefer_proc(Heap& heap, unsigned i);
// Whether the calling thread is inside a call it entered through its binding (its in_call flag,
// which a revoker waits on): a protocol hook can tell that it runs inside such a call.
bool inside_bound_call();
// Makes the next `n` background sweeper thread starts of `heap` fail as if the system refused a
// thread (std::system_error). Call it while no heap call runs.
void fail_thread_starts(Heap& heap, unsigned n);

// ---------------------------------------------------------------------------------------------
// Snapshots (taken with the world stopped; must be called from outside any heap call).

// SpanLocation (where a span is) is declared in spanheap/invariants.hpp.

struct SpanInfo {
  std::uintptr_t base = 0;
  std::size_t npages = 0;
  bool in_use = false;      // false: a free page run
  unsigned span_class = 0;  // 0 = large object span
  std::size_t elem_size = 0;
  unsigned nelems = 0;
  unsigned free_index = 0;
  unsigned alloc_count = 0;
  unsigned pending_frees = 0;       // free bits set, waiting for sweep
  bool worth_collecting = false;    // enough pending frees for a collection (ReusePolicy::owner)
  std::int64_t sweepgen_delta = 0;  // span.sweepgen - heap sweepgen: -2, -1, 0, +1 or +3
  SpanLocation location = SpanLocation::nowhere;
  int cache_proc = -1;    // the P caching it, when cached
  bool owned = false;     // cached in the P's owned set (full, parked), not its current span
  bool released = false;  // free run whose pages were returned to the OS
  bool need_zero = false;
};

struct ProcInfo {
  unsigned index = 0;
  std::int64_t flush_gen_delta = 0;  // flush_gen - heap sweepgen: 0 (flushed) or -2 (stale)
  bool idle = true;
  unsigned cached_spans = 0;
};

struct HeapSnapshot {
  std::uint32_t sweepgen = 0;
  ReusePolicy reuse = ReusePolicy::owner;  // the heap's Options::reuse
  std::vector<SpanInfo> spans;             // sorted by base address; in-use spans and free runs
  std::vector<ProcInfo> procs;
  bool sweep_done = false;
  unsigned active_sweepers = 0;
  Stats stats;
  // The pacer since the last bump (docs/design.md "The cycle", step 6): a cycle is requested once
  // `pacer_charged` reaches `pacer_trigger` (0 = no pacing). Under ReusePolicy::owner the charge
  // is the pages handed out net of those taken back, never below 0; under next_cycle every
  // refill's free bytes and every large object.
  std::uint64_t pacer_trigger = 0;
  std::uint64_t pacer_charged = 0;
  std::uint64_t pacer_live_at_bump = 0;  // the survivors the trigger was planned from
};

// With `verify`, also checks the heap from the same census in the same stop of the world and
// stores what Heap::verify() would return: fuzzers and drivers that want both at every boundary
// pay for one walk of the heap instead of two.
HeapSnapshot snapshot(Heap& heap, VerifyResult* verify = nullptr);
// The same, into `into`, whose vectors keep their storage: a driver that takes a snapshot at
// every boundary of every program allocates them once (each allocation under ASan records a
// stack and fills the block).
void snapshot(Heap& heap, HeapSnapshot& into, VerifyResult* verify = nullptr);

// How many full spans a P owns per class besides its current one under ReusePolicy::owner
// (docs/design.md "Owned spans"): a span leaves its P's owned set for central once this many
// more spans of its class were exhausted after it.
unsigned max_owned_spans() noexcept;

// How many pending frees make a small span of `nelems` slots worth collecting under
// ReusePolicy::owner (docs/design.md "Reuse"): a P collects its span, and a free moves a span on
// a full list to partial, once this many of its slots are pending.
unsigned collect_threshold(unsigned nelems) noexcept;

// How many frees of `heap` went through the general checks rather than ending in a fast path (a
// fast path turned them away, or they came by the general path), summed over its Ps. Racy while
// calls run; exact between them.
std::uint64_t held_frees(const Heap& heap);
// How many allocations of `heap` entered by the general path rather than a fast path (a size or
// alignment that no size class serves, a thread with no P to enter, Proc handles, allocate_zeroed,
// the retry after a cycle at the memory limit), summed over its Ps. Racy while calls run; exact
// between them.
std::uint64_t general_allocations(const Heap& heap);

// The first address of the span holding `p`, or 0 when no in-use span of `heap` holds it, read
// under the page heap lock: safe from any thread, but the answer is only current while that span
// cannot be freed, e.g. while the caller holds a live object in it (stress drivers use it to keep
// an anchor object beside an object they free twice).
std::uintptr_t span_start(const Heap& heap, const void* p);

// ---------------------------------------------------------------------------------------------
// The invariant rules shared with Heap::verify() (SpanFacts, span_violations and the rest) are in
// spanheap/invariants.hpp, included above.

// The size-class table (read-only view), for property tests and fuzzers.
struct SizeClassInfo {
  unsigned span_class;
  std::size_t size;
  std::size_t npages;
  unsigned nelems;
  std::size_t tail_waste;  // span bytes - nelems * size
};
std::vector<SizeClassInfo> size_classes();
// The class serving `size` with `align` (0 = large object).
unsigned size_to_class(std::size_t size, std::size_t align);

// The pacer's arithmetic (lib/src/pacing.hpp) on plain numbers, for the pacing fuzz target and
// property tests: the plan a cycle's bump makes, and the pages proportional sweep owes.
struct PacingPlan {
  std::uint64_t trigger;  // bytes of allocation until the next cycle; 0 = no pacing
  double pages_per_byte;  // proportional sweep ratio; 0 = none
};
PacingPlan plan_pacing(std::uint64_t survivors, unsigned gc_percent, std::uint64_t memory_limit,
                       std::uint64_t committed, std::uint64_t pages_to_sweep);
std::uint64_t sweep_target(double pages_per_byte, std::uint64_t allocated);
std::uint64_t pacing_trigger_floor() noexcept;  // the least trigger with gc_percent != 0

}  // namespace spanheap::testing
