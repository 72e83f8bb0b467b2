// heap_probes: the probes of a heap only the property files make, each returning its violations
// (heap_oracle.hpp): the snapshot rules plus the P count, the fake OS's accounting, find_object at
// every span's edges (the page map) and over every slot of a small span.
#include "heap_oracle.hpp"

#include <fmt/format.h>
#include <spanheap/oracle/snapshot_check.hpp>

namespace spanheap::props {
namespace {

constexpr std::size_t kPage = page_size;

std::size_t span_end(const SpanInfo& s) { return s.base + s.npages * kPage; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Static invariants of one snapshot: the oracle library's snapshot rules (the same rules, and
// ids, as Heap::verify()) plus the P count this heap was built with.

std::vector<std::string> snapshot_violations(const HeapSnapshot& snap, unsigned procs) {
  std::vector<std::string> v;
  if (snap.procs.size() != procs)
    v.push_back(fmt::format("snapshot lists {} Ps, heap has {}", snap.procs.size(), procs));
  for (const Violation& x : oracle::snapshot_violations(snap))
    v.push_back(fmt::format("{}: {}", x.invariant, x.message));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Accounting against the fake OS (Stats against the spans is a snapshot rule).

std::vector<std::string> os_accounting_violations(const HeapSnapshot& snap,
                                                  const testing::FakeOsMemory& os) {
  std::vector<std::string> v;
  testing::SpanTotals t;
  for (const SpanInfo& s : snap.spans) t.add(s);
  const Stats& st = snap.stats;
  if (st.reserved_bytes != os.reserved_bytes())
    v.push_back(fmt::format("accounting: stats.reserved_bytes = {}, the OS reserved {}",
                            st.reserved_bytes, os.reserved_bytes()));
  const std::uint64_t in_spans = t.in_use_bytes + t.free_bytes + t.released_bytes;
  if (os.committed_bytes() < in_spans)
    v.push_back(fmt::format("accounting: the OS committed {} bytes, fewer than the {} in spans",
                            os.committed_bytes(), in_spans));
  if (st.live_objects + st.frees < st.pending_frees)
    v.push_back("accounting: pending frees exceed objects");
  return v;
}

// ---------------------------------------------------------------------------------------------
// Page map: find_object at the edges of every span.

std::vector<std::string> page_map_violations(const Heap& heap, const HeapSnapshot& snap) {
  std::vector<std::string> v;
  auto probe = [&](const SpanInfo& s, std::uintptr_t addr, const char* where) {
    PointerInfo info = heap.find_object(reinterpret_cast<const void*>(addr));
    auto bad = [&](const char* why) {
      v.push_back(fmt::format(
          "page map: find_object({:#x}) at {} of {}: kind {} base {} class {}: {}", addr, where,
          describe(s), static_cast<int>(info.kind), info.base, info.span_class, why));
    };
    if (!s.in_use) {
      if (info.kind != PointerKind::free_pages) bad("expected free_pages");
      return;
    }
    const std::uintptr_t limit = s.base + s.elem_size * s.nelems;
    if (addr >= limit) {
      if (info.kind != PointerKind::span_tail) bad("expected span_tail");
      return;
    }
    if (info.span_class != s.span_class) bad("class disagrees");
    const std::uintptr_t slot = s.base + (addr - s.base) / s.elem_size * s.elem_size;
    if (reinterpret_cast<std::uintptr_t>(info.base) != slot) bad("base is not the slot start");
    const bool at_start = addr == slot;
    switch (info.kind) {
      case PointerKind::object_start:
        if (!at_start) bad("object_start inside a slot");
        break;
      case PointerKind::interior:
        if (at_start) bad("interior at a slot start");
        break;
      case PointerKind::free_slot:
        break;
      default:
        bad("expected a slot kind");
    }
    if (s.span_class == 0 && info.kind == PointerKind::free_slot)
      bad("large span with a free slot");
  };
  for (const SpanInfo& s : snap.spans) {
    probe(s, s.base, "start");
    probe(s, span_end(s) - 1, "last byte");
    if (s.npages > 1) probe(s, s.base + kPage * (s.npages / 2) + 8, "middle page");
  }
  int local = 0;
  if (heap.find_object(&local).kind != PointerKind::foreign)
    v.push_back("page map: a stack address is not foreign");
  return v;
}

std::vector<std::string> slot_violations(const Heap& heap, const SpanInfo& s) {
  std::vector<std::string> v;
  if (!s.in_use || s.span_class == 0) return v;
  unsigned allocated = 0, pending = 0;
  for (unsigned i = 0; i < s.nelems; ++i) {
    const std::uintptr_t addr = s.base + std::uintptr_t{i} * s.elem_size;
    PointerInfo info = heap.find_object(reinterpret_cast<const void*>(addr));
    if (info.kind == PointerKind::object_start) {
      ++allocated;
      if (info.pending_free) ++pending;
      if (info.size < s.elem_size)
        v.push_back(
            fmt::format("slot {} usable size {} < elem size: {}", i, info.size, describe(s)));
    } else if (info.kind == PointerKind::free_slot) {
      if (i < s.free_index)
        v.push_back(fmt::format("INV-A1: slot {} below free_index is free: {}", i, describe(s)));
    } else {
      v.push_back(
          fmt::format("slot {} classified {} : {}", i, static_cast<int>(info.kind), describe(s)));
    }
  }
  if (allocated != s.alloc_count)
    v.push_back(fmt::format("INV-A2: {} slots allocated by the bits, alloc_count says: {}",
                            allocated, describe(s)));
  if (pending != s.pending_frees)
    v.push_back(
        fmt::format("{} slots pending by the bits, pending_frees says: {}", pending, describe(s)));
  return v;
}

}  // namespace spanheap::props
