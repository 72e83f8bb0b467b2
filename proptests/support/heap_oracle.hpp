// heap_oracle: the shadow model and the checks shared by every property file. A CheckedHeap owns a
// deterministic heap (sweepers = 0, gc_percent = 0, expensive checks, a fake OS), remembers every
// object the driver allocated, and after each step compares the new snapshot with the previous one
// and with the shadow: the static invariants of DESIGN §8, the transitions the step may make, the
// sweep and flush counts, and the object table. See docs/property-tests.md.
#pragma once

#include <spanheap/oracle/snapshot_check.hpp>
#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace spanheap::props {

// The P the test thread takes first for a facade call (Heap::allocate, Heap::free): TestHeap makes
// it the thread's first choice (testing::prefer_proc), and every P is idle when a step starts (a
// Proc handle gives its P back; the snapshot after each step revokes a binding), so every facade
// call runs on it. By default the choice would be a hash of the thread's id, which differs from
// one process to the next, and a failing case would not replay elsewhere.
inline constexpr unsigned facade_first_proc = 0;

using testing::HeapSnapshot;
using testing::SpanInfo;
using testing::SpanLocation;

struct HeapSetup {
  unsigned procs = 2;
  FlushPolicy flush = FlushPolicy::lazy;
  CheckLevel checks = CheckLevel::expensive;
  std::size_t arena_bytes = std::size_t{4} << 20;  // small arenas: growth crosses arenas quickly
  unsigned release_after_cycles = 2;
  // When a freed slot may come back (oracle::ReusePolicy says what each policy allows);
  // check_stateful draws it for every generated case.
  ReusePolicy reuse = ReusePolicy::next_cycle;
};

// A heap as the properties drive it: nothing happens unless a step asks for it.
struct TestHeap {
  explicit TestHeap(const HeapSetup& setup);
  testing::FakeOsMemory os;  // declared before heap: outlives it
  testing::RecordingHandler errors;
  std::unique_ptr<Heap> heap;
};

// What a step did, as far as the transition checks need to know.
enum class Op : std::uint8_t {
  allocate,            // proc: one object (ptr, size, align)
  fill,                // proc: several objects of one class in a row (refills allowed)
  free,                // proc: a valid free of a tracked object (ptr)
  wake,                // proc: acquire and release (lazy flush if stale)
  idle,                // nothing at all
  flush_idle,          // proc: ragged-barrier flush of one P (result_bool: it flushed)
  ragged_barrier,      // every stale P flushed
  sweep_one,           // result_bool: something was swept
  proportional_sweep,  // result_count: spans swept
  begin_cycle,         // stop the world, finish the cycle, sg += 2, restart
  collect,             // begin_cycle + ragged_barrier
  flush_all,           // every cache returned to central (stale spans swept by the flush)
  bad_free,            // an invalid free (or other bad input): changes nothing but the error log
};
const char* to_string(Op op);

struct Step {
  Op op = Op::idle;
  int proc = -1;
  bool result_bool = false;
  unsigned result_count = 0;
  std::vector<std::uintptr_t> allocated;  // allocate / fill: every pointer returned, in order
  std::size_t size = 0;
  std::size_t align = 16;
  std::uintptr_t ptr = 0;                  // free / bad_free
  std::vector<ErrorKind> expected_errors;  // bad_free: the one report it must make (any of these)
  // allocate / fill / free through Heap::allocate and Heap::free (the fast paths, on the calling
  // thread's own P): `proc` is -1 until finish() fills in the P the calls used.
  bool facade = false;
};

struct TrackedObject {
  std::uintptr_t base = 0;
  std::size_t size = 0;    // requested
  std::size_t usable = 0;  // usable_size at allocation
  unsigned span_class = 0;
  bool pending = false;    // freed, waiting for its span's sweep
  std::uint64_t seed = 0;  // content pattern (oracle/content.hpp) of its first and last word
};
// Its first and last word still hold its pattern.
bool contents_intact(const TrackedObject& o);

// Which groups of checks run at every step (span slot scans and page-map probes cost more).
struct CheckSet {
  bool slots = true;       // per-slot scan of every small span through find_object (INV-A1..A4)
  bool page_map = true;    // find_object at span edges agrees with the snapshot
  bool accounting = true;  // Stats and FakeOsMemory against the snapshot
  bool verify = true;      // heap.verify() must report nothing
};

class CheckedHeap {
 public:
  CheckedHeap(const HeapSetup& setup, CheckSet checks = {});

  Heap& heap() { return *test_.heap; }
  TestHeap& test_heap() { return test_; }
  const HeapSnapshot& last() const { return last_; }
  const std::map<std::uintptr_t, TrackedObject>& objects() const { return objects_; }
  // Every address an allocation ever returned (to tell a reclaimed slot from a never-used one).
  const std::set<std::uintptr_t>& ever_returned() const { return returned_; }
  // True when the page holding `addr` has been part of an in-use span at some step boundary
  // (the heap remembers such pages: a free into them after their span is released may be named a
  // double free).
  bool page_ever_in_use(std::uintptr_t addr) const {
    return used_pages_.count(addr & ~std::uintptr_t{page_size - 1}) > 0;
  }
  unsigned procs() const { return setup_.procs; }
  const HeapSetup& setup() const { return setup_; }

  // Allocation through P `proc`, recorded in the step. Writes a stamp into the object. Returns
  // nullptr on failure (the step's checks then report it).
  void* allocate(Step& step, unsigned proc, std::size_t size, std::size_t align = 16);
  // A valid free of a tracked, not yet freed object through P `proc` (checks its stamp first).
  void free(Step& step, unsigned proc, std::uintptr_t base);
  // The same through the facade, Heap::allocate and Heap::free, which enter the calling thread's
  // own P (its affinity, chosen by the library) by their fast paths. Mark the step `facade`.
  void* allocate_facade(Step& step, std::size_t size, std::size_t align = 16);
  void free_facade(Step& step, std::uintptr_t base);
  // The P the facade calls of this heap use, once a facade step has shown it: the one P bound to
  // this thread after the call (testing::proc_bound), else the P caching the span a small facade
  // allocation came from. The thread keeps its P while every P is idle between steps, as here.
  std::optional<unsigned> facade_proc() const { return facade_proc_; }
  // Facade calls so far, and how many of them ended in a fast path: an allocation that did not
  // enter the general path (testing::general_allocations), a free that no general check held
  // (testing::held_frees).
  struct FacadeCounts {
    std::uint64_t allocations = 0;
    std::uint64_t fast_allocations = 0;
    std::uint64_t frees = 0;
    std::uint64_t fast_frees = 0;
  };
  const FacadeCounts& facade_counts() const { return facade_counts_; }

  // Takes a snapshot and returns every violation of the step's rules, then adopts the new state
  // (so one failed step does not cascade). Empty = all good.
  std::vector<std::string> finish(const Step& step);

  // The slot of `span` the P caching it will hand out next, by a naive scan of find_object
  // (nelems if full). Used to check that the allocation cache mirrors the bits (INV-A3).
  unsigned naive_next_free(const SpanInfo& span);

  const SpanInfo* span_containing(const HeapSnapshot& snap, std::uintptr_t p) const;

 private:
  // step_oracle.cpp: one step's checks, over what the step changed.
  struct StepDiff;
  void check_reports(StepDiff& d);
  void check_static(StepDiff& d);
  void check_span_move(StepDiff& d, const SpanInfo& before);
  void check_cycle_move(StepDiff& d, const SpanInfo& before, const SpanInfo* after,
                        const std::string& id);
  unsigned actors_on(const StepDiff& d, const SpanInfo& before, const SpanInfo& after) const;
  void check_new_spans(StepDiff& d);
  void check_sweeps(StepDiff& d);
  void check_flushes(StepDiff& d);
  // object_checks.cpp: the objects.
  void check_allocations(StepDiff& d);
  void check_collections(StepDiff& d);
  void check_predicted_slot(StepDiff& d, const SpanInfo& span, std::uintptr_t p);
  void check_objects(StepDiff& d);
  // Before an allocation through P `proc`: the slot each of its current spans of the class hands
  // out next.
  void predict_slots(unsigned proc, std::size_t size, std::size_t align);
  // After an allocation call: records and stamps the object (nullptr: a failed allocation).
  void* track_allocation(Step& step, void* p, std::size_t size, std::size_t align);
  // After a facade call, before the snapshot revokes the binding: the Ps bound to this thread.
  void note_facade_binding();
  // In finish(): the P the step's facade calls used (learning it), or -1 with a violation.
  int resolve_facade_proc(const Step& step, const HeapSnapshot& cur, std::vector<std::string>& v);

  HeapSetup setup_;
  CheckSet checks_;
  TestHeap test_;
  HeapSnapshot last_;
  std::map<std::uintptr_t, TrackedObject> objects_;
  std::uint64_t allocations_ = 0;  // content seeds
  // Next-free slot predicted before an allocation on a cached span (span base -> slot).
  std::map<std::uintptr_t, unsigned> predicted_slot_;
  int predicted_for_ = -1;  // the P whose spans predicted_slot_ holds
  std::optional<unsigned> facade_proc_;
  std::set<unsigned> facade_bound_;  // Ps bound to this thread after the step's facade calls
  FacadeCounts facade_counts_;
  // Problems found inside allocate()/free(), reported by the next finish().
  std::vector<std::string> overlap_;
  std::set<std::uintptr_t> returned_;
  std::set<std::uintptr_t> used_pages_;
  // Pending objects whose slots were reused within the current step (see allocate()).
  std::vector<std::uintptr_t> reused_pending_;
};

// Static invariants of one snapshot: the oracle library's snapshot rules
// (oracle/snapshot_check.hpp, each "<id>: <message>") and the P count `procs` the heap was built
// with.
std::vector<std::string> snapshot_violations(const HeapSnapshot& snap, unsigned procs);
// Stats and the spans against the fake OS (reserved and committed bytes).
std::vector<std::string> os_accounting_violations(const HeapSnapshot& snap,
                                                  const testing::FakeOsMemory& os);
// find_object at the edges of every span agrees with the snapshot (page map agrees).
std::vector<std::string> page_map_violations(const Heap& heap, const HeapSnapshot& snap);
// Per-slot equations of one small in-use span (INV-A1, A2, free bits within allocated).
std::vector<std::string> slot_violations(const Heap& heap, const SpanInfo& span);

using oracle::describe;
std::string describe(const HeapSnapshot& snap);
// Joins violations into one failure message (at most `limit` of them).
std::string join(const std::vector<std::string>& violations, std::size_t limit = 20);

}  // namespace spanheap::props
