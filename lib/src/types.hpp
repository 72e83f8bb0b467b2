// types: the one place that describes every structure of spanheap — a glossary, then each struct
// with its invariants as equations, its state machine, and what guards each field. Read this with
// docs/design.md open; Go readers can hold runtime/mheap.go, mcentral.go, mcache.go next to it.
//
// Glossary
//   page        8 KiB, the unit of the page heap (Go's _PageSize).
//   arena       a reservation of address space (Options::arena_bytes, aligned to 1 MiB) whose pages
//               the page heap hands out; each arena has a page table (page -> Span*).
//   span        a run of pages: in use (objects of one size class, or one large object) or free.
//   span class  index into the size-class table; 0 means "one large object".
//   sg          the heap's sweepgen; +2 per cycle, written only while the world is stopped.
//   P           a processor (Go's p): owns a cache; a thread holds a P for the length of a heap
//               call.
//   cache       a P's mcache: a current span per class (and its owned spans), the allocation fast
//               path, flush_gen.
//   central     per span class, the spans that are not cached: partial/full x swept/unswept.
//   cycle       stop the world, sg += 2, start the world, ragged barrier; then sweeping.
//   pending     a freed object: its free bit is set; its slot is reused once a collection or
//               the next sweep reclaims it.
//
// Guard vocabulary (closed list): GUARDED_BY(mu) | owner: <who> | world: written only while stopped
// | atomic (acq/rel): <what the release publishes> | immutable after init.
#pragma once

#include <spanheap/spanheap.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "check.hpp"

namespace spanheap::detail {

inline constexpr std::size_t page_shift = 13;
static_assert((std::size_t{1} << page_shift) == page_size);
// Arenas are aligned to, and sized in multiples of, one granule; the process-wide registry maps
// granules to arenas. 1 MiB keeps a fuzzer's fresh heap cheap (one small reservation per input).
inline constexpr std::size_t granule_shift = 20;
inline constexpr std::size_t granule_size = std::size_t{1} << granule_shift;
inline constexpr std::size_t pages_per_granule = granule_size / page_size;
// The huge page of x86-64 and of arm64 with 4 KiB base pages (Options::huge_pages).
inline constexpr std::size_t huge_page_size = std::size_t{2} << 20;
inline constexpr std::size_t pages_per_huge_page = huge_page_size / page_size;
// The most Ps a heap may have: bounds the per-P arrays; Go's GOMAXPROCS limit is 256 too.
inline constexpr unsigned max_procs = 256;
// The most background sweepers: each is a thread, and past a few per core they only contend for
// the same unswept lists.
inline constexpr unsigned max_sweepers = 64;
// The largest arena reservation asked for (Options::arena_bytes): 1 TiB, the largest object.
inline constexpr std::size_t max_arena_bytes = std::size_t{1} << 40;

// ---------------------------------------------------------------------------------------------
// Size classes (size_classes.cpp): generated once, constant afterwards.
struct SizeClass {
  std::uint32_t size;     // object size; 0 for class 0 (large)
  std::uint32_t npages;   // pages per span
  std::uint32_t nelems;   // (npages * page_size) / size
  std::uint32_t div_mul;  // index = (offset * div_mul) >> 32, exact for every offset < span bytes
  // object_slot's test (span.hpp): size = odd << slot_shift, slot_inv = odd's inverse mod 2^32.
  std::uint32_t slot_inv;
  std::uint8_t slot_shift;
};
// The largest class count the generator may produce (the real count is num_size_classes()).
inline constexpr unsigned max_size_classes = 72;
// Slots per span never exceed this (class 8 B in one page: 1024), so bitmaps are 16 words.
inline constexpr unsigned max_nelems = 1024;
inline constexpr unsigned bitmap_words = max_nelems / 64;

// ---------------------------------------------------------------------------------------------
// Span (span.cpp). Go's mspan.
//
// sweepgen state machine (DESIGN §3), for an in-use span, relative to the heap's sg:
//   | value | meaning                              | who may change it                          |
//   | sg-2  | needs sweeping, not cached           | anyone, by CAS sg-2 -> sg-1 (= ownership)  |
//   | sg-1  | being swept by exactly one owner     | only the owner; ends at sg, or span freed  |
//   | sg    | swept, not cached                    | central (under its lock) when caching it   |
//   | sg+1  | cached before this cycle: stale      | only the cache's P: flush stores sg-1      |
//   | sg+3  | swept, cached in a current cache     | only the cache's P: refill/flush store sg  |
// A free span (in the page heap) has sweepgen == sg as of when it was freed. A recycled Span
// struct keeps its last sweepgen (never reset), so a racing sweeper's CAS on it fails.
//
// Collection (ReusePolicy::owner, docs/design.md "Reuse"): the bit work of a sweep, done without a
// sweepgen change by whoever owns the span's object state outside a sweep — the P caching it at
// sg+3 when its slots run out (T9a), or the P taking it from central at sg, off every list (T9b).
// It holds free_lock, so it is atomic with respect to every free that does not own the span.
// A large object's free at sg frees its span to the page heap at once (T10).
//
// Allocation state, for slot i < nelems:
//   allocated(i)  = i < free_index || alloc_bits[i]
//   alloc_count   = #{ i : allocated(i) }                         (INV-A2)
//   free_bits     ⊆ allocated                                      (pending frees)
//   remote_bits   ⊆ allocated; 0 unless the span is cached         (INV-S6)
//   pending       = free_bits | remote_bits; a slot in both is a double free whose two frees
//                   raced (the owner's and another P's): reported when the owner merges them
//   while free_index < nelems (cached span):
//     alloc_cache = ~alloc_bits[B..B+63] >> (free_index - B), B = free_index & ~63,
//                   with no bit for a slot >= nelems; or 0 when free_index == B (the word
//                   not loaded yet: the fast path empties the cache at a word's last slot) (INV-A3)
//   after sweep: free_index = 0, free_bits = 0,
//                alloc_bits = allocated \ free_bits(before), alloc_count = popcount   (INV-A4)
//   reclaimed_bits[i]: slot i was reclaimed by a sweep or a collection since the span was
//                      initialised (it tells a double free from a free of a never-allocated slot).
//   free_lock: held by every free that does not own the span (validate the slot, set its free
//              bit, or its remote bit when another P caches the span), by every collection and
//              merge, and by every change of cache_owner, so "allocated" cannot shrink under such
//              a free's check and it cannot write `free` while an owner writes it without a
//              lock. The owning P frees into its own cached span without it: only it may
//              collect there.
enum class SpanState : std::uint8_t { dead = 0, in_use = 1, free = 2 };

struct SpanList;
struct Arena;

// One word of a span's slot bitmaps: its allocation and pending-free bits side by side, so that a
// free's checks and its bit touch one cache line. While a P caches the span, `free` is that P's
// alone (its frees set bits with a plain load and store: no locked instruction, which would wait
// for every store before it) and other Ps' frees go to Span::remote_bits; the owner merges those
// into `free` under free_lock when it collects or uncaches the span.
struct alignas(16) SlotWord {
  std::atomic<std::uint64_t> alloc{0};  // written by sweep (owner) and init (see Span below)
  std::atomic<std::uint64_t> free{0};   // cached: the owner's frees; else freers under free_lock
};

struct alignas(64) Span {
  // Line 0: everything the allocation and free fast paths read, then the first bitmap word, so
  // that a free into one of a span's first 64 slots touches this line alone.
  std::atomic<std::uint64_t> alloc_cache{0};  // owner: cache's P (or sweep owner); stats() reads
                                              // a cached span's racily (relaxed)
  std::atomic<std::uint32_t> free_index{0};   // owner writes; freers read (acq/rel: slots below are
                                              // allocated)
  std::uint32_t nelems = 0;                   // immutable after init (of this use of the struct)
  std::uint16_t alloc_count = 0;  // owner: cache's P, sweep owner, or central under lock
  // The free fast path's "is this an object's start, and which" in one multiply (object_slot in
  // span.hpp): immutable after init, from the class (SizeClass); 0 for a large span.
  std::uint8_t slot_shift = 0;
  std::atomic<SpanState> state{SpanState::dead};  // atomic (acq/rel): in_use publishes the
                                                  // fields written by span_init_*
  std::uint32_t slot_inv = 0;
  std::uintptr_t start = 0;                // immutable after init
  std::size_t elem_size = 0;               // immutable after init (large: npages * page_size)
  std::atomic<std::uint32_t> sweepgen{0};  // the protocol word (table above); atomic (acq/rel)
  // The caching P in the low 16 bits (owner_none: no P; 16 bits hold every P index, max_procs)
  // and `remote_pending` in bit 16: some remote_bits may be set. One word so that the owner's free
  // fast path tests "this P caches the span and no other P has freed into it" with one compare.
  // Written only under free_lock, or before the span is published; read without it by the owner's
  // free (a stale "no remote frees" is a free racing with the owner's, which the merge finds), by
  // collection and by a freer helping a stale owner.
  std::atomic<std::uint32_t> owner_word{owner_none};
  static constexpr std::uint32_t owner_none = 0xFFFF;
  static constexpr std::uint32_t remote_flag = std::uint32_t{1} << 16;
  int cache_owner(std::memory_order order = std::memory_order_relaxed) const noexcept {
    const std::uint32_t o = owner_word.load(order) & owner_none;
    return o == owner_none ? -1 : static_cast<int>(o);
  }
  bool remote_pending() const noexcept {
    return (owner_word.load(std::memory_order_relaxed) & remote_flag) != 0;
  }
  // Requires: free_lock held, or the span not yet published.
  void set_cache_owner(int p) noexcept {
    const std::uint32_t o = p < 0 ? owner_none : static_cast<std::uint32_t>(p);
    owner_word.store((owner_word.load(std::memory_order_relaxed) & remote_flag) | o,
                     std::memory_order_relaxed);
  }
  void set_remote_pending(bool on) noexcept {
    const std::uint32_t w = owner_word.load(std::memory_order_relaxed) & ~remote_flag;
    owner_word.store(on ? w | remote_flag : w, std::memory_order_relaxed);
  }
  // Bitmaps. The alloc bits and reclaimed_bits are written only by sweep (owner) and init, read by
  // freers once the span is swept and racily by find_object (relaxed; sweep publishes its new
  // bits with the release store of free_index = 0).
  SlotWord bits[bitmap_words] = {};

  std::atomic<std::uint8_t> span_class{0};  // immutable after init; atomic because free() reads
                                            // it before it knows the struct is stable
  std::uint32_t div_mul = 0;                // immutable after init: slot_of, for any address
  std::atomic<bool> free_lock{false};  // spin lock (above); never reset, the struct may be recycled
                                       // while a stale freer waits on it
  // Memory may be dirty. Written by the span's owner (its sweep or collection, the page heap);
  // atomic (relaxed) because allocate_zeroed reads it after the fast path has left its P: it only
  // goes from false to true while the span holds the object just allocated.
  std::atomic<bool> need_zero{false};
  bool released = false;  // free spans: pages returned to the OS (page heap lock)
  // How many leading words of the bitmaps may be non-zero: words_for(nelems) of the struct's use
  // when span_init_* last cleared them (nothing writes past its own nelems). Initialisation clears
  // only these and the new use's words, not all bitmap_words of the four bitmaps (a large span's
  // one slot cleared 64 words at every allocation).
  std::uint8_t bit_words = 0;
  std::uint32_t census_index = 0;  // world: scratch for the verifier's census
  std::size_t npages = 0;          // page heap lock
  std::uint64_t free_since = 0;    // free spans: cycle number when freed (page heap lock)
  // Intrusive list links: central lists (central lock), page heap free lists (page heap lock) or
  // a P's owned list (Cache::owned: the P).
  Span* next = nullptr;
  Span* prev = nullptr;
  std::atomic<SpanList*> list{nullptr};  // the list holding it; written under that list's
                                         // lock, read by membership checks under a central lock
  Arena* arena = nullptr;                // immutable after init

  std::atomic<std::uint64_t> reclaimed_bits[bitmap_words] = {};
  // While a P caches the span: other Ps' pending frees (set under free_lock); 0 otherwise
  // (INV-S6). Apart from `free`, so that a P freeing into its own spans never reads this line.
  std::atomic<std::uint64_t> remote_bits[bitmap_words] = {};

  std::size_t bytes() const noexcept { return npages << page_shift; }
  std::uintptr_t limit() const noexcept { return start + elem_size * nelems; }
  unsigned cls() const noexcept { return span_class.load(std::memory_order_relaxed); }
  bool is_large() const noexcept { return cls() == 0; }
};
static_assert(offsetof(Span, bits) == 48, "line 0 holds the fast paths' fields and bits[0]");
static_assert(max_procs < Span::owner_none, "Span::owner_word holds a P index in 16 bits");
static_assert(max_nelems <= 0xFFFF, "Span::alloc_count holds a slot count in 16 bits");

// An intrusive doubly-linked list of spans. GUARDED_BY the owner's lock (central or page heap).
struct SpanList {
  Span* first = nullptr;
  Span* last = nullptr;
  std::size_t count = 0;
  std::size_t pages = 0;  // Σ npages of the spans in it (proportional sweep's page count)
};

// ---------------------------------------------------------------------------------------------
// Arena (page_map.cpp): one reservation, its page table and page history.
enum class PageHistory : std::uint8_t { never_used = 0, in_use = 1, freed = 2 };
// The history packs 2 bits a page, 32 pages a word: a run's carve and its page_free each write
// its length / 32 words, where a byte a page cost a large object's allocation and free one store
// per page each (a sixth of their instructions).
inline constexpr unsigned history_bits = 2;
inline constexpr std::size_t history_pages_per_word = 64 / history_bits;
inline constexpr std::size_t history_words(std::size_t pages) noexcept {
  return (pages + history_pages_per_word - 1) / history_pages_per_word;
}

// Its tables are committed lazily, as pages are: an arena reserved for a huge request costs no
// resident memory for the pages it never commits. committed_pages <= table_pages <= npages.
struct Arena {
  std::uintptr_t base = 0;          // immutable after init
  std::size_t npages = 0;           // immutable after init
  std::size_t committed_pages = 0;  // page heap lock; pages [0, committed) are committed
  // Pages whose spans[] and history[] entries are committed (zero until written). Lock-free
  // readers bound their page index by it; entries past it are inaccessible memory.
  std::atomic<std::size_t> table_pages{0};  // atomic (acq/rel): the entries below it exist
  HeapState* owner = nullptr;               // immutable after init
  // An arena of huge pages (Options::huge_pages): base is aligned to one, and it serves only spans
  // of small objects (its runs are PageHeap's kind 1). Immutable after init.
  bool huge = false;
  // Advised (OsMemory::advise_huge_pages, whole huge pages of it) and from then on committed in
  // whole ones (grow). A huge arena is advised when it is reserved, but for the heap's first:
  // that one starts on small pages and is advised by the growth that passes its first huge page
  // (docs/design.md "Huge pages"). Page heap lock.
  bool advised = false;
  std::atomic<Span*>* spans = nullptr;  // page -> span (atomic (acq/rel): span fields)
  // page -> what it was last used for (PageHistory, history_bits each; written under the page
  // heap lock, read lock-free by the bad-free path).
  std::atomic<std::uint64_t>* history = nullptr;
  std::size_t meta_bytes = 0;         // reservation: this header page, then spans[], then history[]
  std::size_t spans_committed = 0;    // page heap lock: bytes of spans[] committed
  std::size_t history_committed = 0;  // page heap lock: bytes of history[] committed
  void* meta = nullptr;
  Arena* next = nullptr;  // page heap lock
};

// ---------------------------------------------------------------------------------------------
// Page heap (page_heap.cpp). Go's mheap, without the spans it hands out.
// Runs of fewer pages than this have an exact-size free list; longer ones share one list.
inline constexpr std::size_t free_list_exact = 128;

// Two kinds of arenas and of free runs (Options::huge_pages): [1] arenas of huge pages, which
// serve the spans of small objects, and [0] the others, which serve large objects (and every
// request when huge pages are off). A free run is listed under its arena's kind.
inline constexpr unsigned page_kinds = 2;

struct PageHeap {
  RankedMutex mu{LockRank::page_heap};
  Arena* arenas GUARDED_BY(mu) = nullptr;
  Arena* current[page_kinds] GUARDED_BY(mu) = {};  // the arena new pages are committed from
  // [kind][n] = free runs of exactly n pages
  SpanList free_runs[page_kinds][free_list_exact] GUARDED_BY(mu);
  SpanList free_long[page_kinds] GUARDED_BY(mu);  // free runs of ≥ free_list_exact pages
  // Bit n of [kind]: free_runs[kind][n] is non-empty (set and cleared with the list; the
  // verifier checks it).
  std::uint64_t nonempty[page_kinds][free_list_exact / 64] GUARDED_BY(mu) = {};
  Span* span_pool GUARDED_BY(mu) = nullptr;  // recycled Span structs (sweepgen kept)
  struct Chunk {
    void* base;
    std::size_t size;
    Chunk* next;
  };
  Chunk* chunks GUARDED_BY(mu) = nullptr;  // metadata reservations (span pool)
  std::byte* chunk_cursor GUARDED_BY(mu) = nullptr;
  std::byte* chunk_end GUARDED_BY(mu) = nullptr;
  // Accounting (written under mu, read racily by stats()); the page counts with a load and a
  // store (count_pages in page_heap.cpp), which the lock orders.
  std::atomic<std::size_t> reserved_bytes{0};   // arenas + metadata reservations
  std::atomic<std::size_t> committed_bytes{0};  // committed arena pages, released or not
  // Committed metadata: arena headers and page tables, Span struct chunks. Counted against
  // Options::memory_limit with committed_bytes (Stats::metadata_bytes).
  std::atomic<std::size_t> meta_bytes{0};
  std::atomic<std::size_t> released_bytes{0};  // free pages currently returned to the OS
  std::atomic<std::size_t> in_use_pages{0};    // pages in in-use spans
  std::atomic<std::size_t> free_pages{0};      // pages in free runs
};

// ---------------------------------------------------------------------------------------------
// Central (central.cpp). Go's mcentral, with the four sets of Go 1.15 kept as locked lists:
// partial[sg/2 % 2] = swept spans with a free slot, partial[1 - sg/2 % 2] = unswept, and the same
// for full. A cycle's bump turns every swept list into an unswept one without touching a span.
// Cached spans are in no list. Class 0 holds large-object spans (always "full"). Cache-line
// aligned: threads refilling different classes do not contend for one line of locks.
struct alignas(64) Central {
  RankedMutex mu{LockRank::central};
  SpanList partial[2] GUARDED_BY(mu);
  SpanList full[2] GUARDED_BY(mu);
  std::uint8_t span_class = 0;  // immutable after init
};

// ---------------------------------------------------------------------------------------------
// Cache and P (cache.cpp, proc.cpp). Go's mcache and p.
//
// flush_gen ∈ {sg, sg-2}: sg-2 means stale (cached spans are sg+1 and must be flushed, swept by
// this P, before it allocates). A P acquires itself (status idle -> running); the ragged barrier
// takes it (idle -> running) to flush it. A stop-the-world writes no P's status: it sets
// World::stopped and reads every status, and a P taken from idle while `stopped` is set is given
// back before use (keep_taken, proc.hpp), so with the world stopped every P is idle.
//
// Binding (docs/design.md "P binding"): a thread leaving a call may keep its P (running -> bound,
// binder = its ThreadRecord). While bound, that thread enters and leaves calls by writing its own
// record's in_call alone; anyone else who needs the P revokes it (bound -> revoking, then a
// process-wide barrier, then waits for the binder's in_call == 0) and owns it as if it had taken
// it idle. INV-B1: a bound P is never stale (it was flushed by the call that bound it, and a
// stop-the-world revokes every binding).
//
// in_call lives in the thread's record, not in the P: a thread whose binding was revoked (and
// which may not know it yet) writes only its own flag, never the flag of the P's next binder.
// Records come from a static pool and go back to it at thread exit, so a binding of a thread that
// has exited points to a valid record (idle, or reused by a thread that then only makes revokers
// wait for its own calls).
struct alignas(64) ThreadRecord {
  std::atomic<std::uint32_t> in_call{0};  // written by the record's thread: 1 inside a bound call
  std::atomic<bool> used{false};
};
enum class ProcStatus : std::uint32_t { idle = 0, running = 1, bound = 2, revoking = 3 };

// The spans a P owns besides its current one, per class (ReusePolicy::owner; cache.cpp): each
// is full (allocation exhausted it) and at the cache's sweepgen, with cache_owner = the P. Linked
// through Span::next/prev; Span::list stays nullptr. Owner: the P.
struct OwnedSpans {
  Span* first = nullptr;  // most recently parked
  Span* last = nullptr;   // parked longest ago: the one collected, or evicted, first
  std::uint32_t count = 0;
};

struct Cache {
  // Owner: P; &empty_span when none. Atomic only for stats(), which reads every P's current spans
  // to take their alloc caches' slots back out of `allocs` (below): a span is stored with release,
  // so that reader (acquire) sees the struct as built; the owner's own loads are relaxed.
  std::atomic<Span*> alloc[max_size_classes]{};
  std::atomic<std::uint32_t> flush_gen{0};  // owner writes (release: spans are flushed); the cycle
                                            // reads while stopped
  // Counters: single writer (the P holding it), read racily by stats().
  // Allocations are counted a word at a time, not a call at a time (Go's mcache counts a span's
  // free slots when it caches the span): when the slow path leaves a word's free slots in the
  // alloc cache of the current span, `allocs` and `alloc_bytes` count all of them at once, with
  // the object the slow path hands out, and the fast path counts nothing. The slots still in the
  // cache are counted back out when the span leaves the cache (cache_flush), and stats()
  // subtracts those of every P's current spans, so its figures stay exact (INV-C, verify()).
  std::atomic<std::uint64_t> allocs{0};
  std::atomic<std::uint64_t> alloc_bytes{0};
  std::atomic<std::uint64_t> frees{0};
  std::atomic<std::uint64_t> free_bytes{0};
  // This P's collections (span_collect) and what they reclaimed: per P, not in HeapCounters,
  // because a collection runs every few dozen allocations and two Ps' locked adds to one line
  // cost each of them a cache miss there.
  std::atomic<std::uint64_t> collections{0};
  std::atomic<std::uint64_t> collected_objects{0};
  std::atomic<std::uint64_t> collected_bytes{0};
  // Large objects whose pages this P gave back at their free (T10) and their bytes: per P for
  // the same reason (a locked add costs a few nanoseconds, and a large free made three).
  std::atomic<std::uint64_t> large_frees{0};
  std::atomic<std::uint64_t> large_freed_bytes{0};
  // Frees that reached the general checks (free_holding) with this P held: a fast path that
  // turned the free away, or the general path itself. The test that a valid owner free stays on
  // the fast path reads it (a fast path that declines too much is correct, and only slower).
  std::atomic<std::uint64_t> held_frees{0};
  // Allocations that entered by the general path (heap_allocate) with this P held: a fast path
  // turned them away (a size or alignment no class serves, no P to enter), or a Proc handle,
  // allocate_zeroed or the retry after a cycle made them. The test that every size a class serves
  // stays on the fast paths reads it.
  std::atomic<std::uint64_t> general_allocs{0};
  std::uint64_t collect_every_bytes = 0;  // owner: debug.collect_every accounting
  // Last: the fast paths' fields above share cache lines; this is touched at refills only.
  OwnedSpans owned[max_size_classes] = {};  // owner: P
};

// The Ps' status words, in one array of their own (HeapState::statuses): a stop reads every P's
// status, and that array costs it a few lines, not one line in each multi-kilobyte ProcState.
// How many words share a line depends on who writes them (HeapState::status_stride): with
// binding off every call takes and gives back its P with a CAS on its word, so each word has a
// line of its own and two threads' calls never write one line; with binding on (automatic or
// fenced) a word changes only when its P is bound, revoked or taken by a thread without a binding,
// so the words are packed, sixteen to a line, and a stop at 64 Ps reads 5 lines instead of 66
// (docs/performance.md, "Stop-the-world pause").
struct alignas(64) ProcStatusLine {
  static constexpr unsigned words = 16;
  std::atomic<ProcStatus> value[words] = {};  // atomic (acq/rel): the P's state
};
static_assert(sizeof(ProcStatusLine) == 64, "sixteen status words fill one cache line");

struct alignas(64) ProcState {
  std::atomic<ProcStatus>& status() const noexcept { return *status_word; }
  // Immutable after init: HeapState::status_word(i).
  std::atomic<ProcStatus>* status_word = nullptr;
  std::atomic<ThreadRecord*> binder{nullptr};  // the bound thread; changed only while unbound
  // The thread that may enter through its binding: the binder while the status is bound, else
  // nullptr. Set before the status becomes bound (leave_call), cleared by begin_revoke before the
  // revoker's barrier, so enter_bound's handshake needs this one word, not status and binder.
  std::atomic<ThreadRecord*> entry{nullptr};
  std::uint32_t bind_veto = 0;  // holder: calls left before this P may be bound again
  unsigned index = 0;           // immutable after init
  bool has_cache = true;        // false for sweeper slots (immutable after init)
  // Immutable after init: the bound fast paths reach the heap through their P, on their slow
  // exits only (heap.cpp, allocate_bound), not through a register kept for it (INV-H2). Atomic
  // (relaxed) for that: the compiler hoists a plain load above the branches, onto every call.
  std::atomic<HeapState*> heap{nullptr};
  Cache cache;
};

// ---------------------------------------------------------------------------------------------
// Sweeping state (sweeper.cpp).
enum class SweepKind : std::uint8_t {
  background,
  proportional,
  on_demand,
  by_flush,
  termination,
  by_free
};

struct SweepState {
  // Spans at sg-2 (unswept, uncached). Set at the bump (world stopped); decremented by each
  // successful sg-2 -> sg-1 CAS. Monotone within a cycle.
  std::atomic<std::int64_t> unswept{0};
  // Ps whose flush_gen is sg-2. Set at the bump; decremented by each flush. Monotone in a cycle.
  std::atomic<std::int64_t> stale_procs{0};
  // Owners between "about to CAS" and "sweep published" (Go 1.17's sweepLocker). Incremented
  // before the CAS so that "sweep done" = stale_procs == 0, then unswept == 0, then active == 0,
  // read in that order, is exact (Go #45315, #46500).
  std::atomic<std::int64_t> active{0};
  // Class cursor for background/proportional sweepers (Go's sweep.centralIndex); reset at bump.
  std::atomic<unsigned> cursor{0};
  // Proportional sweep (Go's sweepPagesPerByte). Pages are counted swept, bytes allocated since
  // the bump are counted up; both only grow within a cycle, so the debt below never underflows
  // (Go #57523 came from measuring heap_live, which a forced flush can lower).
  std::atomic<std::uint64_t> pages_swept{0};
  std::atomic<std::uint64_t> pages_to_sweep{0};  // world: set at bump
  std::atomic<std::uint64_t> bytes_allocated{0};
  std::atomic<double> pages_per_byte{0.0};  // world: set at bump
  // Background sweepers park on work_epoch (atomic wait) until a cycle bumps it or shutdown is
  // set. A futex word, not a mutex and condition variable: it holds no waiter state that a fork()
  // child would inherit from the parent's parked sweepers (destroying such a condition variable
  // in the child blocked for ever).
  std::atomic<std::uint32_t> work_epoch{0};
  std::atomic<bool> shutdown{false};  // atomic (acq/rel): set once, before the last epoch bump
};

// ---------------------------------------------------------------------------------------------
// World (world.cpp): the stop-the-world state and its proof.
class HeapState;

struct World {
  RankedMutex cycle_mu{LockRank::cycle};  // one cycle / verify / flush_all at a time
  // Set for the whole of a stop (seq_cst: the stopper's half of the handshake of keep_taken);
  // takers sleep on it (atomic wait) until the restart clears it. A line of its own: every call
  // that takes its P with a CAS reads it, and the sweep counters that follow are written often.
  alignas(64) std::atomic<bool> stopped{false};
};

// Proof that the world is stopped: only stop_the_world makes one; functions that need the world
// stopped take a `const WorldStopped&`.
class WorldStopped {
 public:
  WorldStopped(const WorldStopped&) = delete;
  WorldStopped& operator=(const WorldStopped&) = delete;
  WorldStopped(WorldStopped&&) = default;
  std::uint64_t start_ns() const noexcept { return start_ns_; }

 private:
  friend WorldStopped stop_the_world(HeapState& heap);
  explicit WorldStopped(std::uint64_t start_ns) : start_ns_(start_ns) {}
  std::uint64_t start_ns_;
};

// ---------------------------------------------------------------------------------------------
// Heap counters (stats.cpp): cumulative, read racily by stats(); exact when the world is stopped.
struct HeapCounters {
  std::atomic<std::uint64_t> cycles{0};
  // Reclaimed by sweeps and large frees; collections count theirs per P (Cache::collected_*).
  std::atomic<std::uint64_t> reclaimed_objects{0};
  std::atomic<std::uint64_t> reclaimed_bytes{0};
  std::atomic<std::uint64_t> pause_last_ns{0};
  std::atomic<std::uint64_t> pause_max_ns{0};
  std::atomic<std::uint64_t> pause_total_ns{0};
  std::array<std::atomic<std::uint64_t>, pause_buckets> pause_histogram{};
  std::atomic<std::uint64_t> flushes_lazy{0};
  std::atomic<std::uint64_t> flushes_barrier{0};
  std::atomic<std::uint64_t> flushes_eager{0};
  std::array<std::atomic<std::uint64_t>, 6> swept{};  // by SweepKind
  std::atomic<std::uint64_t> revocations{0};
  std::atomic<std::uint64_t> errors{0};
  // Double frees whose two frees raced (merge_remote_frees): both were counted as frees.
  std::atomic<std::uint64_t> raced_double_frees{0};
  std::atomic<std::uint64_t> raced_double_free_bytes{0};
};

}  // namespace spanheap::detail
