// heap_state: the aggregate of one heap's layers (Go's mheap_ plus allp and the GC state). Each
// layer's functions take the HeapState and touch their own part, the sweepgen and the counters.
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "affinity.hpp"
#include "protocol_points.hpp"
#include "types.hpp"

namespace spanheap::detail {

struct CensusEntry;  // validate.hpp

// The arena HeapState::home names before the heap has one: base 0, no pages.
inline const Arena no_arena{};

struct Pacer {
  // Bytes charged since the last bump. ReusePolicy::next_cycle: every refill's free bytes and
  // every large object (Go's heap_live). ReusePolicy::owner: the pages the page heap handed out
  // net of those it took back, never below 0 (written under the page heap's lock): freed memory
  // is reused without a cycle, so only growth of the heap's spans brings the next one.
  std::atomic<std::uint64_t> allocated{0};
  std::atomic<std::uint64_t> trigger{0};  // start a cycle when allocated reaches it (0 = off)
  std::atomic<std::uint64_t> live_at_bump{0};
  // Read by every allocation's slow path, written once a cycle: apart from the charge, which
  // refills and page allocations write.
  alignas(64) std::atomic<bool> requested{false};
};

class HeapState {
 public:
  explicit HeapState(const Options& options);
  ~HeapState();
  HeapState(const HeapState&) = delete;
  HeapState& operator=(const HeapState&) = delete;

  bool debug_checks() const noexcept { return checks != CheckLevel::release; }
  bool expensive_checks() const noexcept { return checks == CheckLevel::expensive; }
  std::uint32_t sg() const noexcept { return sweepgen.load(std::memory_order_acquire); }
  ProcState& proc(unsigned i) noexcept { return procs[i]; }
  ProcState& sweep_slot(unsigned i) noexcept { return procs[nprocs + i]; }

  Options options;
  OsMemory* os;
  std::uint64_t uid;  // unique per heap in the process (never reused)
  // ProcAffinity::key of a thread bound to one of this heap's Ps with ProcBinding::automatic;
  // 0, which no thread holds, when allocation hooks are on (set in the constructor).
  std::uint64_t bound_key = 0;
  // The Heap object's copy of bound_key (Heap::bound_key_), which the fast paths test instead:
  // verify() checks that the two agree and that every P names this heap (INV-H2).
  const std::uint64_t* bound_key_copy = nullptr;
  unsigned nprocs = 0;  // Ps (immutable after the constructor)
  unsigned nslots = 0;  // Ps + sweeper slots
  CheckLevel checks = CheckLevel::release;
  bool trace;
  bool allocation_hooks = false;  // immutable after init: a debug option acts at every allocation
  // Options::binding resolved (membarrier registered, or the fence a TSan build needs). Written
  // at construction and, in a fork child that cannot register membarrier, by the fork handler.
  ProcBinding binding = ProcBinding::off;

  std::atomic<std::uint32_t> sweepgen{0};  // world: written only while stopped
  // One of this heap's arenas that held a span, where the free fast path looks first: an address
  // test instead of the registry's two loads and its owner test. An arena that held a span is
  // given back only with the heap, so whichever one this names stays valid; the first allocation
  // sets it, in its slow path (once: a line every call reads is not rewritten). Until then it
  // names an arena of no pages, which holds no address. It lives in the Heap object (Heap::home_,
  // set by its constructor), with the copies of the arena's base and page table that the fast
  // path reads beside it rather than through it: written (relaxed) before its release store, by
  // the one call that wins home_claimed, and read after the fast path's acquire load of it, so
  // that a path that sees the arena sees its copies too (INV-H1, checked by verify() and the fast
  // path's debug check). While it names no_arena, its table_pages (0) sends every pointer
  // elsewhere and the copies are not used.
  HomeArena* home = nullptr;
  std::atomic<bool> home_claimed{false};  // the first allocation that publishes the home arena
  // A line of its own: the fast paths read the fields above on every call, and the page heap's
  // lock is written by every page allocation and free.
  alignas(64) PageHeap pages;
  Central central[max_size_classes];
  // Bit c: a span of small class c has existed (set in cache_span before the span is published;
  // read with the world stopped, or by a sweep of a cycle that began after the span existed, which
  // that cycle's stop-the-world orders after the bit). Only these classes can have listed or
  // cached spans, so the verifier walks their lists and cache entries, and sweep_one their
  // unswept lists, instead of every class's.
  std::atomic<std::uint64_t> classes_used[(max_size_classes + 63) / 64] = {};
  bool class_used(unsigned cls) const noexcept {
    return (classes_used[cls / 64].load(std::memory_order_relaxed) >> (cls % 64) & 1) != 0;
  }
  std::unique_ptr<ProcState[]> procs;
  // procs[i].status() is status_word(i): word i * status_stride of the lines (types.hpp). The
  // lines hold status_slots words at that stride, nslots rounded up to four (the stop's first
  // pass reads four at a time); the words past nslots stay idle.
  std::unique_ptr<ProcStatusLine[]> statuses;
  unsigned status_slots = 0;   // immutable after init
  unsigned status_stride = 1;  // immutable after init: 1 (binding on) or ProcStatusLine::words
  std::atomic<ProcStatus>* status_words() const noexcept { return statuses[0].value; }
  std::atomic<ProcStatus>& status_word(unsigned i) const noexcept {
    return status_words()[i * status_stride];
  }
  World world;
  SweepState sweep;
  // Lines of their own: `pacer.requested` is read by every allocation, and the counters are written
  // by every collection and sweep on any thread; sharing a line, two threads' collections made
  // every allocation of the other miss (2 threads ran slower than 1).
  alignas(64) Pacer pacer;
  alignas(64) HeapCounters counters;
  // Background sweepers (sweeper.cpp): started at the first cycle, restarted in a fork() child.
  // Guarded by world.cycle_mu (the cycle wakes them; fork handlers and destruction hold it too).
  std::vector<std::thread> sweeper_threads;
  unsigned sweepers_wanted = 0;     // Options::sweepers, lowered when a thread cannot start
  unsigned fail_thread_starts = 0;  // test seam: testing::fail_thread_starts
  // The process-wide list of live heaps (fork.cpp), guarded by its lock.
  HeapState* fork_prev = nullptr;
  HeapState* fork_next = nullptr;
  std::optional<WorldStopped> fork_stopped;  // the world as stopped by the fork prepare handler
  // Test seams (testing::set_protocol_hook): called at protocol points where another thread could
  // observe the heap mid-transition, at the points whose bit is set in protocol_points (a hook
  // on one point costs the others a test of that word, not a call). Set only while no heap call
  // runs; null and 0 in normal use.
  ProtocolHook protocol_hook;
  std::uint32_t protocol_points = 0;
  // The verifier's span census (validate.cpp: take_census), kept between censuses so that a
  // verify does not allocate and free it each time. Used only with the world stopped under the
  // cycle lock.
  std::vector<CensusEntry> census;
};

// A protocol point reached: the test seam's hook runs if it asked for this point.
inline void protocol_point(const HeapState& heap, ProtocolPoint point) {
  if (SPANHEAP_UNLIKELY((heap.protocol_points >> static_cast<unsigned>(point) & 1u) != 0)) {
    CallbackScope scope;  // the hook may call the heap from inside this call
    heap.protocol_hook(point);
  }
}

// Range-checks heap.options (options.cpp): each value outside its range is a misuse report
// naming the field, the value and what is used instead. Called first by the constructor.
void validate_options(HeapState& heap);
// SPANHEAP_TRACE alone (options.cpp): a heap built from explicit Options still traces on it, and
// reads no other variable, so it neither reports their bad values nor parses them at every
// construction.
bool trace_from_env();

}  // namespace spanheap::detail
