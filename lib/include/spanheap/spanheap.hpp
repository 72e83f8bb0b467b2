// spanheap: a Go-runtime-style heap (size classes, spans, central lists, per-P caches, a page heap)
// with stop-the-world cycles, the five-state sweepgen protocol, lazy cache flushing and concurrent
// sweepers. This header is the public contract; docs/design.md explains the machinery behind it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spanheap {

namespace detail {
class HeapState;
struct Arena;
struct Span;

// What the free fast path reads of the heap's home arena, the first it looks in: the arena (for
// its table's bound), its base and its page table, kept in the Heap object itself so that a free
// reaches the page's span without loading the heap's state first (INV-H1, heap_state.hpp).
struct HomeArena {
  std::atomic<const Arena*> arena{nullptr};  // no_arena until the first allocation publishes one
  std::atomic<std::uintptr_t> base{0};
  std::atomic<std::atomic<Span*>*> spans{nullptr};
};
}  // namespace detail

// How a per-P cache is flushed after a cycle's sweepgen bump.
//   lazy:  each P flushes itself at its next acquire; a ragged barrier flushes idle Ps after the
//          world restarts (Go's "flush mcaches lazily", 873bd47). The pause does not grow with Ps.
//   eager: every cache is flushed inside the pause, before the bump (Go before that change); kept
//          as the baseline that the lazy policy is measured against.
enum class FlushPolicy : std::uint8_t { lazy, eager };

// When a freed slot may be handed out again (docs/design.md, "Reuse").
//   owner:      as soon as it is collected: the P that caches the span takes its pending frees when
//               the span runs out of free slots, central takes them when it hands the span to a
//               cache, and a large object's pages go back to the page heap at free(). The default.
//   next_cycle: only after its span's sweep in the next cycle (a quarantine of at least one cycle,
//               which blunts use-after-free and widens the window in which a double free is seen).
enum class ReusePolicy : std::uint8_t { owner, next_cycle };

// Whether a thread keeps its P between heap calls (docs/design.md, "P binding").
//   automatic: a thread that finds its P free keeps it: its later calls enter and leave with plain
//              stores, no atomic read-modify-write; whoever else needs that P (a stop-the-world,
//              another thread) revokes the binding with a process-wide barrier (Linux membarrier).
//              Where membarrier is unavailable: off. In ThreadSanitizer builds: fenced. The
//              default.
//   fenced:    the same binding, with sequentially consistent operations on both sides instead of
//              the barrier (what ThreadSanitizer can check; no faster than off).
//   off:       every call takes a P with a compare-and-swap and gives it back.
enum class ProcBinding : std::uint8_t { automatic, fenced, off };

// Check tiers (STYLE.md "Errors and checks").
//   release:   only the always-on checks that bad input can reach (every bad free is still caught).
//   debug:     plus protocol preconditions (sweepgen transitions, ownership, refill, flush_gen).
//   expensive: plus the full heap verifier at every cycle and per-span equations at every sweep.
enum class CheckLevel : std::uint8_t { release, debug, expensive };

enum class ErrorKind : std::uint8_t {
  invalid_free,   // pointer into this heap that is not a live object (free slot, free pages, tail)
  interior_free,  // pointer inside a live object, not at its start
  double_free,    // object already freed (pending in this cycle, or reclaimed in an earlier one)
  foreign_free,   // pointer that no spanheap heap owns
  out_of_memory,  // memory limit or the OS refused
  size_overflow,  // size beyond the largest supported object
  bad_alignment,  // alignment not a power of two, or larger than max_alloc_size
  misuse,      // API misuse: free through the wrong heap, heap destroyed while in use, bad P index
  corruption,  // heap metadata found inconsistent (a protocol check failed)
};
inline constexpr std::size_t error_kind_count = 9;

// Stable lower-case name of an error kind, as printed in reports ("double_free").
const char* to_string(ErrorKind kind) noexcept;

struct ErrorReport {
  ErrorKind kind;
  const void* ptr;      // the pointer the report is about (nullptr when none)
  std::string message;  // "spanheap: <kind>: <cause> (ptr=..., span=..., class=...)"
};

// Called for every report. The default handler prints the message to stderr and aborts. A handler
// that returns lets the heap continue: bad input leaves the heap intact, and the failing call
// returns nullptr / does nothing. A handler must not throw (reports can come from inside a heap
// call, with a P or a lock held): one that throws is reported as misuse and the process aborts.
// A handler may call the heap: such a call never enters the P of the call that reported (it takes
// another, and aborts with a misuse message when it could only have that one). A corruption report
// can come with a heap lock held, and a call from its handler may wait on that lock. The heap is
// not async-signal-safe: a signal handler must not call it.
using ErrorHandler = std::function<void(const ErrorReport&)>;

// Address-space provider (test seam; see spanheap/testing.hpp for a fake with failure injection).
// All sizes and addresses are multiples of the page size (8 KiB).
class OsMemory {
 public:
  virtual ~OsMemory() = default;
  // Reserves `size` bytes aligned to `align`, inaccessible until committed. nullptr on failure.
  virtual void* reserve(std::size_t size, std::size_t align) = 0;
  // Makes [p, p+size) readable and writable; false on failure.
  virtual bool commit(void* p, std::size_t size) = 0;
  // Returns the physical pages of [p, p+size) to the OS; the range stays committed and reads zero.
  virtual void release(void* p, std::size_t size) = 0;
  // Gives back a whole reservation made by reserve().
  virtual void unreserve(void* p, std::size_t size) = 0;
  // Whether this provider keeps AddressSanitizer poison on its memory between reservations, as a
  // provider that recycles address space from heap to heap can (the fuzz executor's does). Read
  // only by heaps built with ASan. When true, neither side makes a pass over the shadow when
  // memory changes hands, and every byte the heap does not use stays poisoned:
  //   - commit() hands its range back poisoned, whether fresh or committed by an earlier heap;
  //     the heap unpoisons what it uses (its metadata at once, arena pages as objects);
  //   - unreserve() is given a reservation whose committed bytes are all poisoned again (with
  //     DebugOptions::poison_freed the heap's free pages are poisoned already, so a heap that
  //     holds no object hands its arenas back as they are);
  //   - release() leaves the poison as it is.
  // When false (the default), memory is plain memory to the provider: commit() hands it back
  // accessible, and the heap unpoisons whatever it poisoned before it unreserves it.
  virtual bool keeps_poison() const noexcept { return false; }
  // Asks that [p, p+size), part of a reservation, be backed by huge pages where the OS can
  // (Linux: madvise(MADV_HUGEPAGE), which transparent huge pages in "madvise" mode need). A
  // hint: nothing fails without it. Called once per arena, before any of it is committed, when
  // Options::huge_pages is set. The default does nothing.
  virtual void advise_huge_pages(void* p, std::size_t size) {
    (void)p;
    (void)size;
  }
};

// The real provider (mmap / mprotect / madvise). Shared by every heap that is not given another.
OsMemory& system_memory() noexcept;

struct DebugOptions {
  bool poison_freed = false;       // ASan-poison every slot that is not live (needs an ASan build)
  bool clobber_freed = false;      // fill reclaimed slots with a pattern, check it at allocation
  std::size_t collect_every = 0;   // run a cycle every N bytes allocated (0 = off)
  bool verify_each_cycle = false;  // run verify() at every cycle; violations are reported
};

struct Options {
  unsigned procs = 0;     // number of Ps; 0 = std::thread::hardware_concurrency()
  unsigned sweepers = 1;  // background sweeper threads; 0 = none
  FlushPolicy flush = FlushPolicy::lazy;
  ReusePolicy reuse = ReusePolicy::owner;
  ProcBinding binding = ProcBinding::automatic;
  unsigned gc_percent = 100;     // cycle when allocation since the last one reaches this %
                                 // of the live heap; 0 = cycles only on collect()
  std::size_t memory_limit = 0;  // limit on committed bytes, metadata included; 0 = none
  ErrorHandler error_handler;    // empty = print and abort
  CheckLevel checks =
#ifdef NDEBUG
      CheckLevel::release;
#else
      CheckLevel::debug;
#endif
  DebugOptions debug;
  std::size_t arena_bytes = std::size_t{64} << 20;  // address space reserved per arena (≥ 1 MiB)
  // Growth commits at least this much at a time (rounded up to pages): fewer commits against
  // less committed-but-unused memory. Fuzzers use smaller chunks to reach growth more often.
  std::size_t commit_bytes = std::size_t{512} << 10;
  unsigned release_after_cycles = 2;  // free page runs idle this many cycles go back to the OS
  // Back arenas with 2 MiB huge pages where the OS allows it (OsMemory::advise_huge_pages): an
  // arena is then aligned to 2 MiB and grows by whole huge pages, so that a workload whose live
  // set is larger than the TLB's reach walks far fewer page-table entries and takes one page
  // fault per 2 MiB. The heap's first 2 MiB of small objects stay on small pages, so that a
  // short process does not pay for a whole huge page. The cost: resident memory rounds up to
  // 2 MiB steps of growth past that, and a release of part of a huge page splits it
  // (docs/design.md "Huge pages").
  bool huge_pages = true;
  bool trace = false;      // one line per cycle on stderr (also SPANHEAP_TRACE=1)
  OsMemory* os = nullptr;  // nullptr = system_memory(); not owned

  // `base` overridden by SPANHEAP_PROCS, SPANHEAP_SWEEPERS, SPANHEAP_FLUSH (lazy|eager),
  // SPANHEAP_REUSE (owner|next_cycle), SPANHEAP_BINDING (automatic|fenced|off),
  // SPANHEAP_GC_PERCENT, SPANHEAP_MEMORY_LIMIT, SPANHEAP_CHECKS (release|debug|expensive),
  // SPANHEAP_POISON, SPANHEAP_CLOBBER, SPANHEAP_COLLECT_EVERY, SPANHEAP_VERIFY, SPANHEAP_TRACE,
  // SPANHEAP_HUGE_PAGES,
  // SPANHEAP_ARENA_BYTES, SPANHEAP_COMMIT_BYTES.
  static Options from_env(Options base);
  static Options from_env();  // from_env(Options{})
};

inline constexpr std::size_t page_size = 8192;
inline constexpr std::size_t max_small_size = 32768;
inline constexpr std::size_t max_alloc_size = std::size_t{1}
                                              << 40;  // 1 TiB: beyond is size_overflow

// Pause times are bucketed by powers of two of microseconds: bucket i counts pauses in
// [2^(i-1), 2^i) µs (bucket 0: below 1 µs; the last bucket: everything longer).
inline constexpr std::size_t pause_buckets = 24;

struct Stats {
  std::uint64_t cycles = 0;
  std::uint32_t sweepgen = 0;
  // Bytes.
  std::size_t live_bytes = 0;      // objects allocated and not yet reclaimed (pending frees count)
  std::size_t span_bytes = 0;      // pages in in-use spans
  std::size_t mapped_bytes = 0;    // committed address space (in-use + free pages not released)
  std::size_t released_bytes = 0;  // free pages returned to the OS
  std::size_t reserved_bytes = 0;  // address space reserved
  std::size_t metadata_bytes = 0;  // committed metadata: arena headers, page tables, span structs
                                   // (counted against Options::memory_limit with mapped_bytes)
  std::size_t next_trigger = 0;    // live_bytes at which the next automatic cycle starts (0 = off)
  // Objects.
  std::uint64_t live_objects = 0;
  std::uint64_t pending_frees = 0;  // freed, waiting for their span's sweep
  std::uint64_t allocations = 0;    // cumulative
  std::uint64_t frees = 0;          // cumulative valid frees
  // Pauses (nanoseconds).
  std::uint64_t pause_last_ns = 0;
  std::uint64_t pause_max_ns = 0;
  std::uint64_t pause_total_ns = 0;
  std::array<std::uint64_t, pause_buckets> pause_histogram{};
  // Flushes of per-P caches, by who did them.
  std::uint64_t flushes_lazy = 0;     // by the P itself at acquire
  std::uint64_t flushes_barrier = 0;  // by the ragged barrier, for an idle P
  std::uint64_t flushes_eager = 0;    // inside the pause (FlushPolicy::eager)
  // Spans swept, by who swept them.
  std::uint64_t swept_background = 0;
  std::uint64_t swept_proportional = 0;
  std::uint64_t swept_on_demand = 0;    // central refill, page-heap growth, sweep_one(), free()
  std::uint64_t swept_by_flush = 0;     // stale cached spans swept by their P's flush
  std::uint64_t swept_termination = 0;  // left over at the next cycle, swept before the bump
  // ReusePolicy::owner: pending frees collected before the next cycle's sweep.
  std::uint64_t collections = 0;        // spans whose pending frees an owner collected
  std::uint64_t collected_objects = 0;  // objects reclaimed that way (part of the reclaimed)
  std::uint64_t large_frees = 0;        // large objects whose pages went back at free()
  std::uint64_t revocations = 0;        // P bindings revoked (stop-the-world, another thread,
                                        // or the binder back from another heap: no barrier)
  std::uint64_t errors = 0;             // reports made
};

struct Violation {
  std::string invariant;  // short id, e.g. "INV-S1" or "span.alloc_count"
  std::string message;
};

struct VerifyResult {
  std::vector<Violation> violations;
  bool ok() const noexcept { return violations.empty(); }
  std::string to_string() const;
};

// What a pointer is, as far as one heap can tell (Go's findObject, with the reason spelled out).
enum class PointerKind : std::uint8_t {
  foreign,       // no spanheap heap owns it
  other_heap,    // another spanheap heap owns it
  free_pages,    // inside this heap, in pages that hold no span
  span_tail,     // inside a span, past its last object
  free_slot,     // a slot that is not allocated
  interior,      // inside a live object, not at its start
  object_start,  // the start of a live object (possibly freed but not yet reclaimed)
};

struct PointerInfo {
  PointerKind kind = PointerKind::foreign;
  void* base = nullptr;       // start of the object or slot, when inside a span
  std::size_t size = 0;       // its usable size
  unsigned span_class = 0;    // size class (0 = large)
  bool pending_free = false;  // object_start only: freed, awaiting sweep
};

class Heap;

// An explicit P handle: every call acquires exactly this P (flushing its cache first if the cache
// is stale) and releases it at return. One thread may hold several handles and act as several Ps;
// with sweepers = 0 and gc_percent = 0 the heap then does nothing that the driver did not ask for.
class Proc {
 public:
  void* allocate(std::size_t size, std::size_t align = 16);
  void free(void* p);
  // Acquire and release the P without allocating: performs its lazy flush if it is stale.
  void wake();
  unsigned index() const noexcept { return index_; }

 private:
  friend class Heap;
  Proc(detail::HeapState* heap, unsigned index) : heap_(heap), index_(index) {}
  detail::HeapState* heap_;
  unsigned index_;
};

class Heap {
 public:
  Heap();  // Options::from_env()
  explicit Heap(Options options);
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  // Returns `size` bytes aligned to `align` (any power of two up to max_alloc_size; beyond
  // page_size the object is a large span of its own starting at that alignment), or nullptr
  // after an out_of_memory / size_overflow / bad_alignment report. size 0 returns a unique
  // minimal object. allocate(size) is allocate(size, 16), with no alignment to test.
  void* allocate(std::size_t size);
  void* allocate(std::size_t size, std::size_t align);
  // allocate(), with the first `size` bytes zero (calloc). Memory known to be zero (fresh pages
  // that no sweep or collection has freed an object of: Go's needzero) is not cleared again.
  void* allocate_zeroed(std::size_t size, std::size_t align = 16);
  // Records that the object at `p` is dead; its slot is reused once collected (ReusePolicy::owner)
  // or after its span's next sweep (ReusePolicy::next_cycle).
  // nullptr is a no-op. Anything else that is not a live object's start is reported.
  void free(void* p);
  // Usable bytes of the live object starting at `p`; 0 (and a report) for anything else.
  std::size_t usable_size(const void* p) const;
  // True when `p` lies in address space this heap has reserved.
  bool owns(const void* p) const noexcept;
  // Classifies any pointer (never reports).
  PointerInfo find_object(const void* p) const noexcept;

  // Runs a whole cycle (stop the world, bump sweepgen, restart, flush idle Ps) and returns once
  // the world is running again. Must not be called from inside a heap call.
  void collect();
  // Sweeps one span if any needs it; false when nothing was left to sweep.
  bool sweep_one();
  Stats stats() const;
  // Stops the world and checks every invariant (DESIGN §3, §4, §8); returns the violations.
  VerifyResult verify();

  Proc proc(unsigned i);
  unsigned procs() const noexcept;
  const Options& options() const noexcept;

  detail::HeapState& state() noexcept { return *state_; }

 private:
  // First: the fast paths hand their slow exits its address, which is then the Heap's own.
  std::unique_ptr<detail::HeapState> state_;
  // Trivially destructible, so the state (which keeps a pointer to it) may outlive its destructor
  // within the Heap's own.
  detail::HomeArena home_;
  // A copy of the state's bound key, which never changes: the fast paths' first test reads it
  // here, not through state_, and a bound call then loads nothing of the state (verify() checks
  // the copy: INV-H2).
  std::uint64_t bound_key_ = 0;
};

}  // namespace spanheap
