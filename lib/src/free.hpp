// free: the classification of a pointer passed to free() against the span that holds it and
// the recording of a valid free (docs/design.md "The free and sweep path", "Bad input"): the
// owner's unlocked mark or the locked one, the move of a span with pending frees to its class's
// partial list, and the immediate return of a freed large span (T10).
#pragma once

#include <cstddef>
#include <cstdint>

#include "heap_state.hpp"
#include "span.hpp"

namespace spanheap::detail {

enum class FreeVerdict : std::uint8_t { ok, error };

// What free_with_proc found: for an error, its kind, cause and where in which span.
struct FreeResult {
  FreeVerdict verdict = FreeVerdict::ok;
  ErrorKind kind = ErrorKind::invalid_free;
  const char* cause = "";
  std::uintptr_t span = 0;
  unsigned cls = 0;
  std::size_t offset = 0;
  std::size_t size = 0;
};

// The body of free(), with a P held. Makes the span swept for this cycle first, so the object
// state it reads and writes cannot race with a sweep (Go's ensureSwept).
// Returns false with `out` describing the error for a bad free; nothing was changed then.
bool free_with_proc(HeapState& heap, ProcState& p, const Arena& arena, std::uintptr_t addr,
                    FreeResult& out);

// The fast paths' free into a small span that a P caches, when its owner word is not the freeing
// P's bare index: the P's own span with other Ps' frees pending (the remote flag set), or a span
// another P caches (a thread freeing what another allocated, the common case of producer /
// consumer and larson-like programs). Records a valid free as free_with_proc would (the owner's
// unlocked mark; under free_lock, the remote bit), without its dispatch: one lock, one
// revalidation. Returns false, having written nothing, for anything else — no P caches the span,
// a stale span, a stale freeing P, a bad or double free, the span uncached or recycled while the
// lock was awaited — and the caller takes the general path, which judges and reports it.
// Requires: the caller holds P `p`; `s` is what arena.spans[page] held for `addr`.
bool free_into_cached_span(HeapState& heap, ProcState& p, const Arena& arena, std::size_t page,
                           Span& s, std::uintptr_t addr);

// The free fast path's one test of slot `i` (owner_free_slot) reads "allocated and not pending"
// as the xor of the two only while the pending slots of the word are allocated ones (validate's
// free_bits check, with the world stopped). Debug builds check that word at every fast free of a
// debug-tier heap: a pending bit on a free slot would pass a second free of it as valid.
// `Heap` is HeapState or the fast paths' ProcHeap, converted only where it is read.
template <class Heap>
[[gnu::always_inline]] inline void check_owner_free_word([[maybe_unused]] const Heap& heap,
                                                         [[maybe_unused]] const Span& s,
                                                         [[maybe_unused]] std::uint32_t i) {
#ifndef NDEBUG
  // The word's allocated slots bit by bit (owner_allocated_word has slot i's answer in every bit).
  const auto allocated = [&](unsigned w) {
    return s.bits[w].alloc.load(std::memory_order_relaxed) |
           mask_below(s.free_index.load(std::memory_order_relaxed), w);
  };
  SPANHEAP_DCHECK(&static_cast<const HeapState&>(heap),
                  i >= s.nelems || (s.bits[i / 64].free.load(std::memory_order_relaxed) &
                                    ~allocated(i / 64)) == 0,
                  "a pending free of a slot the free fast path's word holds as free (free_bits)");
#endif
}

}  // namespace spanheap::detail
