// free: the classification of a pointer passed to free() against the span that holds it and
// the recording of a valid free (docs/design.md "The free and sweep path", "Bad input"): the
// owner's unlocked mark or the locked one, the move of a span with pending frees to its class's
// partial list, and the immediate return of a freed large span (T10).
#pragma once

#include <cstddef>
#include <cstdint>

#include "heap_state.hpp"

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

}  // namespace spanheap::detail
