// snapshot_check: every world-stopped invariant a testing::HeapSnapshot can show, each violation
// labelled by its invariant id (docs/design.md "Invariants"). The per-span, per-P, sweep-done
// and accounting rules are the verifier's own (spanheap/testing.hpp span_violations and
// friends), so an id means the same here and in Heap::verify(); this file adds what only a whole
// snapshot shows: address order, coalescing, the P table and what each cache holds.
#pragma once

#include <spanheap/testing.hpp>

#include <string>
#include <vector>

namespace spanheap::oracle {

// Appends every violation of `snap` to `out`; appends nothing (and allocates nothing) when the
// snapshot is healthy.
void snapshot_violations(const testing::HeapSnapshot& snap, std::vector<Violation>& out);
std::vector<Violation> snapshot_violations(const testing::HeapSnapshot& snap);

// One line per violation, "<id>: <message>", at most `limit` of them.
std::string join(const std::vector<Violation>& violations, std::size_t limit = 20);

// One line describing a span of a snapshot, for failure messages.
std::string describe(const testing::SpanInfo& span);

}  // namespace spanheap::oracle
