// span: one run of pages holding objects of one class (Go's mspan): initialisation, the
// allocation bit cache, next-free-index, the allocated/pending/reclaimed bit logic and the bit
// work of a sweep. Ownership rules are in types.hpp; the protocol around sweeping is sweeper.cpp.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>

#include "atomic_read.hpp"
#include "popcount.hpp"
#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Go's emptymspan: a span with no free slot that every empty cache entry points at, so the fast
// path needs no null check. Never in a list, never swept.
extern Span empty_span;

// Initialises a fresh span of small class `span_class` / a large span of its npages, then
// publishes it (state in_use, release). Requires: the span came from page_alloc.
void span_init_small(Span& span, unsigned span_class) noexcept;
void span_init_large(Span& span) noexcept;

// The bits of word `word` that are slots of a span of `nelems` slots.
inline std::uint64_t slots_in_word(std::uint32_t nelems, std::uint32_t word) noexcept {
  const std::uint32_t left = nelems - word * 64;
  return left >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << left) - 1;
}

// alloc_cache = ~alloc_bits[word] (Go's refillAllocCache), without the bits past nelems: the
// allocation fast path hands out whatever bit it finds and never compares with nelems (INV-A3).
inline void refill_alloc_cache(Span& span, std::uint32_t word) noexcept {
  span.alloc_cache.store(
      ~span.bits[word].alloc.load(std::memory_order_relaxed) & slots_in_word(span.nelems, word),
      std::memory_order_relaxed);
}

// Positions free_index/alloc_cache at the first free slot at or after free_index and returns
// it; returns nelems when the span is full (Go's nextFreeIndex). Requires: owner.
std::uint32_t next_free_index(Span& span) noexcept;

// allocated(i) as seen by a freer holding a P while the span is swept for this cycle, for any
// index (object_slot's answer too): false past the last slot, whose bits it does not read.
// free_index ≤ nelems, so an index below it needs no range test. `between` runs between the two
// loads: find_object's protocol point there lets a test run a sweep inside the window.
template <typename Between>
[[gnu::always_inline]] inline bool slot_allocated(const Span& span, std::uint32_t i,
                                                  Between&& between) noexcept {
  if (i >= span.nelems) return false;
  // The two tests folded into one word, without a branch between them: whether a freed slot lies
  // below free_index is a coin toss on a span that is being allocated from, and a branch on it
  // was mispredicted on a third of the frees of a small churning ring. "Below" as a mask of all
  // ones, ORed into the word before the shift, compiles to a compare, a subtract-with-borrow and
  // one bit test (three instructions fewer a free than shifting the word and ORing in the bit).
  // free_index first: a racy reader (find_object, usable_size) may meet a sweep, which writes the
  // new alloc bits and then publishes them with its release store of free_index = 0. Read in this
  // order, a reader that sees the old free_index has the slot's old answer, and one that sees 0
  // sees the new bits. Read the other way round, it could take the old bits and the new 0, and
  // call an object allocated since the last sweep a free slot (the stress drivers' soaks found
  // that: usable_size 0 right after the allocation).
  const std::uint32_t below = span.free_index.load(std::memory_order_acquire);
  between();
  const std::uint64_t word = span.bits[i / 64].alloc.load(std::memory_order_relaxed);
  return ((word | (std::uint64_t{0} - static_cast<std::uint64_t>(i < below))) >> (i % 64) & 1) != 0;
}
[[gnu::always_inline]] inline bool slot_allocated(const Span& span, std::uint32_t i) noexcept {
  return slot_allocated(span, i, [] {});
}

// Bits of word w for slots below `below` (slots w*64 .. w*64+63).
inline std::uint64_t mask_below(std::uint32_t below, unsigned w) noexcept {
  const std::uint32_t lo = w * 64;
  if (below <= lo) return 0;
  if (below >= lo + 64) return ~std::uint64_t{0};
  return (std::uint64_t{1} << (below - lo)) - 1;
}

// slot_allocated as the P that caches the span sees it (the free fast path), as a word whose bit
// i % 64 is the answer for slot i: the alloc bits of i's word, all set when i is below free_index
// (so the other bits are not their slots' answers). free_index is that P's own write, so no order
// is needed, and the compare reads it from memory (relaxed_below_mask). Requires: i < nelems, and
// the caller the span's owner.
[[gnu::always_inline]] inline std::uint64_t owner_allocated_word(const Span& span,
                                                                 std::uint32_t i) noexcept {
  return span.bits[i / 64].alloc.load(std::memory_order_relaxed) |
         relaxed_below_mask(i, span.free_index);
}

inline bool slot_pending(const Span& span, std::uint32_t i) noexcept {
  return ((span.bits[i / 64].free.load(std::memory_order_acquire) |
           span.remote_bits[i / 64].load(std::memory_order_acquire)) >>
              (i % 64) &
          1) != 0;
}
inline bool slot_reclaimed(const Span& span, std::uint32_t i) noexcept {
  return (span.reclaimed_bits[i / 64].load(std::memory_order_relaxed) >> (i % 64) & 1) != 0;
}

// Sets bit `b` (< 64) of `word` and returns whether it was set before: the arbiter of two frees of
// one object (exactly one sees it clear). Requires: free_lock held, and `word` one that only
// holders of free_lock write while the span is in its present state (`free` of a span no P
// caches, `remote_bits` of a cached one: types.hpp). So a plain load and store, not a locked
// fetch_or, which would wait for every store before it: the lock already orders the frees.
[[gnu::always_inline]] inline bool test_and_set_bit_locked(std::atomic<std::uint64_t>& word,
                                                           unsigned b) noexcept {
  const std::uint64_t w = word.load(std::memory_order_relaxed);
  if ((w >> b & 1) != 0) return true;
  word.store(w | std::uint64_t{1} << b, std::memory_order_relaxed);
  return false;
}

// The free of slot `i` by the P that caches the span: true if the slot is already pending (a
// double free, by this P or by another whose free came first), else it sets the slot's bit in
// `free` with a plain load and store. Only the caching P writes `free` (types.hpp, SlotWord), so
// nothing is lost; a free by another P racing with this one may set `remote` meanwhile, and the
// merge reports that slot (merge_remote_frees).
[[gnu::always_inline]] inline bool owner_mark_pending(Span& span, std::uint32_t i) noexcept {
  SlotWord& w = span.bits[i / 64];
  const unsigned b = i % 64;
  // The remote test first: tested before `mine` is loaded, the flag needs no register of its own
  // across the rest.
  if (SPANHEAP_UNLIKELY(span.remote_pending()) &&
      (span.remote_bits[i / 64].load(std::memory_order_relaxed) >> b & 1) != 0)
    return true;
  // Tested and set as "bit b of the word" rather than through a mask, which GCC turns into `bt`
  // and `bts` on a register: the mask cost the free fast path six instructions to build.
  const std::uint64_t mine = w.free.load(std::memory_order_relaxed);
  if ((mine >> b & 1) != 0) return true;
  w.free.store(mine | std::uint64_t{1} << b, std::memory_order_relaxed);
  return false;
}

// word | 1 << (i % 64) as one `bts`, which takes its count mod 64 itself: GCC computes i % 64 into
// a register of its own first, and the free fast path then saved and restored one more.
[[gnu::always_inline]] inline std::uint64_t with_bit(std::uint64_t word, std::uint32_t i) noexcept {
#if defined(__x86_64__)
  asm("btsq %1, %0" : "+r"(word) : "r"(std::uint64_t{i}) : "cc");
  return word;
#else
  return word | std::uint64_t{1} << (i % 64);
#endif
}

// The free fast path's allocated test (owner_allocated_word) and owner_mark_pending in one: true,
// with the slot's `free` bit set, if slot `i` is allocated and not pending; false, with nothing
// written, otherwise (the caller's general path then says which bad free it is). Pending slots are
// allocated ones (validate's free_bits check; the fast path's debug tier checks the word), so
// "allocated and not pending" is their xor: one instruction where an and-not is two without BMI,
// and one test and branch instead of two. Requires: i < nelems, the caller the span's owner, and
// no remote frees pending (the fast path's test of the owner word includes the flag).
[[gnu::always_inline]] inline bool owner_free_slot(Span& span, std::uint32_t i) noexcept {
  SlotWord& w = span.bits[i / 64];
  const std::uint64_t mine = w.free.load(std::memory_order_relaxed);
  if (((owner_allocated_word(span, i) ^ mine) >> (i % 64) & 1) == 0) return false;
  w.free.store(with_bit(mine, i), std::memory_order_relaxed);
  return true;
}

// The free of slot `i` by a P other than the one that caches the span (INV-S6): true if the slot
// is already pending — in the owner's `free` (tested first: the remote bit then stays clear) or in
// `remote` — else it sets the slot's remote bit and raises the span's remote flag, so that the
// owner's fast path stops taking the span as its bare own and its merge reads the bits. The flag
// shares the owner's hot line (owner_word): written only by the first remote free since the
// owner's last merge, not by every one. Requires: free_lock held, and a P caching the span.
[[gnu::always_inline]] inline bool remote_mark_pending(Span& span, std::uint32_t i) noexcept {
  if ((span.bits[i / 64].free.load(std::memory_order_relaxed) >> (i % 64) & 1) != 0 ||
      test_and_set_bit_locked(span.remote_bits[i / 64], i % 64))
    return true;
  if (!span.remote_pending()) span.set_remote_pending(true);
  return false;
}

// Moves the other Ps' frees (`remote`) into `free`; `raced` receives the slots that were in both:
// each is one object freed twice, by the owner and by another P at the same time. Returns how
// many; `raced` is written only when there were remote frees to merge, so read it only when the
// count is not 0. Requires: the span's owner (its caching P, or the sweep or collection owning
// it), holding free_lock.
unsigned merge_remote_frees(Span& span, std::uint64_t (&raced)[bitmap_words]) noexcept;
// Reports each slot of `raced` (n of them) as a double free and takes the second free out of the
// free counters. Called after free_lock is released.
void report_raced_double_frees(HeapState& heap, const Span& span,
                               const std::uint64_t (&raced)[bitmap_words], unsigned n);

// Slot index of address `p` inside `span` (p within [start, limit)).
// A large span's div_mul is 0: its one object is slot 0 with no test for largeness.
inline std::uint32_t slot_of(const Span& span, std::uintptr_t p) noexcept {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(p - span.start) * span.div_mul) >>
                                    32);
}

// The slot of the object that starts at `p`, or a value ≥ nelems when no object starts there
// (past the last object, in the middle of one): the exact-division test of Granlund and
// Montgomery. With elem_size = odd << slot_shift and offset = p - start, offset * slot_inv
// (mod 2^32) is q << slot_shift when offset = q * elem_size, so the rotation gives q; an offset
// not a multiple of 2^slot_shift leaves low bits that the rotation moves to the top, and one not
// a multiple of the odd part lands above every multiple's quotient, which is at least nelems
// (nelems * elem_size < 2^32). One multiply and one compare where slot_of, its recomputed base and
// the compare with p cost two multiplies and two compares.
// Requires: a small span (a large one has slot_inv 0) and p within its pages.
inline std::uint32_t object_slot(const Span& span, std::uintptr_t p) noexcept {
  const auto offset = static_cast<std::uint32_t>(p - span.start);
  return std::rotr(offset * span.slot_inv, span.slot_shift);
}

// The bit work of a sweep: turns pending frees into free slots, recounts, resets free_index and
// alloc_cache. Returns the number of objects reclaimed; `freed_slots` receives their indexes as
// a bitmap (for poisoning / clobbering) in its first words_for(nelems) words, the only ones
// written. Requires: sweep owner (sweepgen == sg-1).
std::uint32_t sweep_bits(HeapState& heap, Span& span,
                         std::uint64_t (&freed_slots)[bitmap_words]) noexcept;

// Span::free_lock (types.hpp): taken by every free that does not own the span and by every
// collection. Critical sections are a few dozen instructions, so waiters spin, then yield.
class SpanLock {
 public:
  explicit SpanLock(Span& span) noexcept : span_(span) {
    while (span_.free_lock.exchange(true, std::memory_order_acquire)) wait();
  }
  ~SpanLock() { span_.free_lock.store(false, std::memory_order_release); }
  SpanLock(const SpanLock&) = delete;
  SpanLock& operator=(const SpanLock&) = delete;

 private:
  void wait() noexcept;
  Span& span_;
};

// How many pending frees make a span of `nelems` slots worth collecting: a third of its slots, at
// least one. A collection has a fixed cost however much it reclaims, so the divisor trades
// collections against footprint: a larger share means fewer collections and more freed slots
// waiting (the measured trade-off is in docs/performance-history.md, "Collections: a third of the
// slots"). Collecting for one or two slots made every few allocations a refill.
inline constexpr std::uint32_t collect_divisor = 3;
constexpr std::uint32_t collect_threshold(std::uint32_t nelems) noexcept {
  return nelems < collect_divisor ? 1 : nelems / collect_divisor;
}

// True when collect_threshold(nelems) slots of the span are pending frees: enough that
// collecting it is worth a refill (a racy hint unless the caller holds free_lock or owns every
// freer's way in).
bool worth_collecting(const Span& span) noexcept;

// Collection (T9, ReusePolicy::owner): turns the span's pending frees into free slots, as a sweep
// does, without changing its sweepgen; then scrubs the reclaimed slots (debug modes) and counts
// them in `by`, the cache of the P that collects. Returns the number of objects reclaimed.
// Requires: the caller holds that P and owns the span's object state (the P caches it at sg+3, or
// took it from central and it is in no list) and does not hold free_lock. Leaves free_index = 0
// and the alloc cache at slot 0, like a sweep.
std::uint32_t span_collect(HeapState& heap, Cache& by, Span& span);

// Reclaimed memory is filled with this byte when DebugOptions::clobber_freed is on, and checked at
// allocation (Go's clobberfree uses 0xdeadbeef; one byte keeps the check simple).
inline constexpr unsigned char clobber_byte = 0xDF;

// Debug modes for slots a sweep or collection reclaimed: clobber (write-after-free check) and
// ASan-poison them.
void scrub_reclaimed(HeapState& heap, Span& span,
                     const std::uint64_t (&freed_slots)[bitmap_words]) noexcept;

// Popcounts (for verification and stats).
std::uint32_t count_allocated(const Span& span) noexcept;
std::uint32_t count_pending(const Span& span) noexcept;

}  // namespace spanheap::detail

namespace spanheap::detail {
// The first slot ≥ `from` whose allocation bit is clear, or nelems. Pure: writes nothing, so
// cache_span can position free_index without ever publishing a slot as allocated.
std::uint32_t first_free_slot(const Span& span, std::uint32_t from) noexcept;
}  // namespace spanheap::detail
