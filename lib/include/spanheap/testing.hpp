// spanheap/testing.hpp: the one header through which tests, fuzzers, property tests and stress
// drivers reach the heap's internals — a fake OS memory with failure injection, a recording error
// handler, fine-grained cycle steps for deterministic drivers, and snapshots of span and P state.
// Nothing here is needed to use the heap; everything here is safe to call from a test.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
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
};
void set_protocol_hook(Heap& heap, std::function<void(ProtocolPoint)> hook);
// The heap's Options::binding as resolved at construction (automatic without membarrier is off,
// a ThreadSanitizer build's automatic is fenced), and whether P `i` is bound to a thread now.
ProcBinding binding(const Heap& heap);
bool proc_bound(const Heap& heap, unsigned i);
// Makes the next `n` background sweeper thread starts of `heap` fail as if the system refused a
// thread (std::system_error). Call it while no heap call runs.
void fail_thread_starts(Heap& heap, unsigned n);

// ---------------------------------------------------------------------------------------------
// Snapshots (taken with the world stopped; must be called from outside any heap call).

enum class SpanLocation : std::uint8_t {
  cached,  // in a P's cache (cache_proc says which)
  central_partial_swept,
  central_partial_unswept,
  central_full_swept,
  central_full_unswept,
  page_heap_free,  // a free page run
  nowhere,         // in no structure: a protocol violation when the world is stopped
};
const char* to_string(SpanLocation location) noexcept;

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

// How many full spans a P owns per class besides its current one under ReusePolicy::owner
// (docs/design.md "Owned spans"): a span leaves its P's owned set for central once this many
// more spans of its class were exhausted after it.
unsigned max_owned_spans() noexcept;

// The first address of the span holding `p`, or 0 when no in-use span of `heap` holds it. Exact
// only while that span cannot be freed, e.g. while the caller holds a live object in it: stress
// drivers use it to keep an anchor object beside an object they free twice.
std::uintptr_t span_start(const Heap& heap, const void* p);

// ---------------------------------------------------------------------------------------------
// Invariant rules over plain facts, shared by Heap::verify() (lib/src/validate.cpp) and the
// toolkit's oracle (oracle/): both call these functions, so an invariant id means the same rule
// and reads the same wherever it is reported. Each appends one Violation per broken rule to `out`
// and appends nothing (and allocates nothing) when the facts are healthy. The ids are those of
// docs/design.md "Invariants and the oracle library".

// One span as the world-stopped rules see it.
struct SpanFacts {
  std::uintptr_t base = 0;
  bool in_use = false;  // false: a free page run
  SpanLocation location = SpanLocation::nowhere;
  int cache_proc = -1;
  bool owned = false;                      // cached in the P's owned set, not its current span
  std::int64_t sweepgen_delta = 0;         // span.sweepgen - sg
  std::int64_t cache_flush_gen_delta = 0;  // the caching P's flush_gen - sg (when cached)
  bool large = false;                      // span class 0
  unsigned nelems = 0;
  unsigned free_index = 0;
  unsigned alloc_count = 0;
  // ReusePolicy::owner: a full span worth collecting belongs on a partial list (INV-R1).
  bool owner_reuse = false;
  bool worth_collecting = false;
};
// Span state and membership with the world stopped (DESIGN §3, §8): INV-S1 (sweepgen in the
// table, large spans never cached, a central set agrees with the sweepgen), INV-S3 (a cached span
// is at sg+3 in a flushed cache, sg+1 in a stale one), INV-S5 (an owned span is full), INV-L1 (in
// some structure), INV-L3 (partial sets hold spans with free slots, full sets none; under owner
// reuse a full span worth collecting is partial, INV-R1), INV-L4 (free runs only in the page heap,
// with no objects), INV-A1 (free_index and alloc_count within nelems).
void span_violations(const SpanFacts& span, std::vector<Violation>& out);

// INV-G4: a P's flush_gen is sg (flushed) or sg-2 (stale).
void flush_gen_violations(unsigned proc, std::int64_t flush_gen_delta, std::vector<Violation>& out);

// INV-G6 (Go #45315/#46500): "sweep done" holds exactly when no span is unswept (sg-2, or a
// stale cached sg+1), no P is stale and no sweeper is active.
void sweep_done_violations(bool sweep_done, std::uint64_t unswept_spans, std::uint64_t stale_procs,
                           std::uint64_t active_sweepers, std::vector<Violation>& out);

// What the spans hold, summed over a census or a snapshot.
struct SpanTotals {
  std::uint64_t objects = 0;         // sum of alloc_count (live + pending)
  std::uint64_t object_bytes = 0;    // sum of alloc_count * elem_size
  std::uint64_t pending_frees = 0;   // sum of pending free bits
  std::uint64_t in_use_bytes = 0;    // pages of in-use spans
  std::uint64_t free_bytes = 0;      // pages of free runs still committed
  std::uint64_t released_bytes = 0;  // pages of free runs returned to the OS
  void add(const SpanInfo& span);
};
// INV-C: Stats agree with the spans (live objects, live bytes, pending frees; span, mapped and
// released bytes).
void accounting_violations(const SpanTotals& spans, const Stats& stats,
                           std::vector<Violation>& out);

// What the pacer and the proportional sweeper have counted since the last bump, beside what the
// spans show, with the world stopped (docs/design.md "The cycle", step 6).
struct PacingFacts {
  bool eager_flush = false;           // FlushPolicy::eager: no cache is stale, no flush sweeps
  bool owner_reuse = false;           // ReusePolicy::owner: the pacer charges pages, not refills
  std::uint64_t pages_to_sweep = 0;   // pages on the unswept lists at the bump
  std::uint64_t unswept_pages = 0;    // pages of spans still at sg-2
  std::uint64_t pages_swept = 0;      // pages swept since the bump, by anyone
  std::uint64_t cache_pages = 0;      // the most pages the Ps' caches hold (current + owned)
  double pages_per_byte = 0;          // the proportional sweep ratio (0 once nothing is left)
  std::uint64_t sweep_charged = 0;    // bytes charged to proportional sweep since the bump
  std::uint64_t pacer_allocated = 0;  // bytes the pacer has charged since the bump
  std::uint64_t span_bytes = 0;       // the pages of every in-use span, small and large
};
// INV-P1: proportional sweep has paid its debt — pages swept cover the sweep target of the bytes
// charged (Go's deductSweepCredit), unless the ratio was dropped because nothing was left.
// INV-P2: every page that left the unswept lists was swept and counted, and nothing else was but
// the stale cached spans a flush swept: none under the eager policy, at most the caches' pages.
// INV-P3 (owner reuse): the pacer's charge, the pages handed out since the bump net of those
// taken back, is at most the pages the spans hold now: a charge credited back after the bump reset
// it (an unsigned underflow) or never credited at all cannot hide.
void pacing_violations(const PacingFacts& pacing, std::vector<Violation>& out);

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
