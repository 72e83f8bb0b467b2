// validate: the heap verifier behind Heap::verify() — every invariant of DESIGN §3, §4 and §8,
// checked with the world stopped, returned as a list of violations (never aborting).
#pragma once

#include <spanheap/invariants.hpp>
#include <spanheap/spanheap.hpp>

#include <vector>

#include "types.hpp"

namespace spanheap::detail {

class HeapState;

// Where every span is, as found by walking the page tables, the central lists, the caches and
// the page heap's free runs. Requires: world stopped.
struct CensusEntry {
  Span* span;
  testing::SpanLocation location;
  int cache_proc;
  int places;  // how many structures hold it (1 when healthy)
  bool owned;  // cached: in the P's owned set (Cache::owned), not its current span
};
// The result lives in the heap (HeapState::census) until the next census.
const std::vector<CensusEntry>& take_census(HeapState& heap, const WorldStopped& stopped,
                                            std::vector<Violation>* violations);

// Every check, appended to `out`. Requires: world stopped.
void validate_stopped(HeapState& heap, const WorldStopped& stopped, std::vector<Violation>& out);
// The same, over a census already taken (the world still stopped).
void validate_census(HeapState& heap, const std::vector<CensusEntry>& census,
                     std::vector<Violation>& out);

// INV-G1 right before a bump: every span at sg or sg+3, on top of validate_stopped. Violations
// are reported as corruption.
void check_cycle_preconditions(HeapState& heap, const WorldStopped& stopped);

}  // namespace spanheap::detail
