// step_diff: what one step of a property test changed, shared by the checks of
// CheckedHeap::finish (step_oracle.cpp for the spans, object_checks.cpp for the objects).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "heap_oracle.hpp"

namespace spanheap::props {

struct CheckedHeap::StepDiff {
  const Step& step;
  const HeapSnapshot& before;
  const HeapSnapshot& cur;
  std::map<std::uintptr_t, const SpanInfo*> prev_spans;
  std::map<std::uintptr_t, const SpanInfo*> cur_spans;
  bool bump;                       // the step bumped sweepgen (a cycle)
  bool lazy;                       // FlushPolicy::lazy
  bool owner_step;                 // the step acquired step.proc
  int helped_proc;                 // an idle stale P the heap flushed to free into its span, or -1
  std::set<std::uintptr_t> swept;  // spans swept in this step
  std::uint64_t expected_sweeps = 0;
  std::vector<std::string>& v;
  // Spans whose pending frees an owner collected in this step (ReusePolicy::owner: T9), and the
  // large spans whose own free returned them to the page heap (T10).
  std::set<std::uintptr_t> collected = {};
  std::set<std::uintptr_t> released_at_free = {};
  void bad(std::string m) { v.push_back(fmt::format("[{}] {}", to_string(step.op), std::move(m))); }
  void sweep(std::uintptr_t base) {
    ++expected_sweeps;
    swept.insert(base);
  }
};

}  // namespace spanheap::props
