// spanheap/invariants.hpp: the heap's invariant rules over plain facts, shared by Heap::verify()
// (lib/src/validate.cpp) and the toolkit's oracle (oracle/, through spanheap/testing.hpp, which
// includes this header): both call these functions, so an invariant id means the same rule and
// reads the same wherever it is reported. Each appends one Violation per broken rule to `out` and
// appends nothing (and allocates nothing) when the facts are healthy. The ids are those of
// docs/design.md "Invariants and the oracle library".
//
// The rules are the product's (libspanheap defines them, the verifier needs them), so they live
// apart from the testing seam: the library's own headers include this one and never testing.hpp.
// They keep the namespace spanheap::testing, the one the toolkit calls them by.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace spanheap::testing {

// Where a span is, as a world-stopped walk of the heap finds it.
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

struct SpanInfo;  // a snapshot's span (spanheap/testing.hpp)

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
  void add(const SpanInfo& span);    // a snapshot's span (testing.hpp; defined in the seam)
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

}  // namespace spanheap::testing
