// heap_oracle: the property files' heap, the object table a step allocates into and frees from,
// and the names and descriptions their failures print (see heap_oracle.hpp and
// docs/property-tests.md). The probes only the property files make (find_object over every slot
// and span edge, the fake OS's accounting) are heap_probes.cpp, the checks of the object table
// after a step object_checks.cpp, the comparison of snapshots step_oracle.cpp. The snapshot rules
// and the sweepgen moves table are the oracle library's (oracle/).
#include "heap_oracle.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <spanheap/oracle/content.hpp>

#include <algorithm>
#include <iterator>

namespace spanheap::props {
namespace {

constexpr std::size_t kPage = page_size;

std::size_t span_end(const SpanInfo& s) { return s.base + s.npages * kPage; }

// The bytes of an object the properties write and check: its first and last word (whole, when it
// is smaller), in the oracle's content pattern; a per-step check of every byte would dominate.
template <class Fn>
void for_each_checked_end(const TrackedObject& o, Fn&& fn) {
  const std::size_t n = std::min<std::size_t>(o.size, 8);
  if (n > 0) fn(std::size_t{0}, n);
  if (o.size > 8) fn(o.size - 8, std::size_t{8});
}

}  // namespace

bool contents_intact(const TrackedObject& o) {
  bool intact = true;
  for_each_checked_end(o, [&](std::size_t from, std::size_t len) {
    const auto* p = reinterpret_cast<const std::byte*>(o.base);
    intact = intact && !oracle::find_mismatch(p, o.seed, from, len);
  });
  return intact;
}

const char* to_string(Op op) {
  switch (op) {
    case Op::allocate:
      return "allocate";
    case Op::fill:
      return "fill";
    case Op::free:
      return "free";
    case Op::wake:
      return "wake";
    case Op::idle:
      return "idle";
    case Op::flush_idle:
      return "flush_idle";
    case Op::ragged_barrier:
      return "ragged_barrier";
    case Op::sweep_one:
      return "sweep_one";
    case Op::proportional_sweep:
      return "proportional_sweep";
    case Op::begin_cycle:
      return "begin_cycle";
    case Op::collect:
      return "collect";
    case Op::flush_all:
      return "flush_all";
    case Op::bad_free:
      return "bad_free";
  }
  return "?";
}

std::string describe(const HeapSnapshot& snap) {
  std::string out = fmt::format("sg={} sweep_done={} active_sweepers={}\n", snap.sweepgen,
                                snap.sweep_done, snap.active_sweepers);
  for (const auto& p : snap.procs)
    out += fmt::format("  P{} flush_gen{:+} cached={}{}\n", p.index, p.flush_gen_delta,
                       p.cached_spans, p.idle ? "" : " busy");
  for (const auto& s : snap.spans) out += "  " + describe(s) + "\n";
  return out;
}

std::string join(const std::vector<std::string>& violations, std::size_t limit) {
  std::string out;
  for (std::size_t i = 0; i < violations.size() && i < limit; ++i) out += violations[i] + "\n";
  if (violations.size() > limit) out += fmt::format("... and {} more\n", violations.size() - limit);
  return out;
}

TestHeap::TestHeap(const HeapSetup& setup) {
  Options o;
  o.procs = setup.procs;
  o.sweepers = 0;
  o.flush = setup.flush;
  o.reuse = setup.reuse;
  o.gc_percent = 0;
  o.checks = setup.checks;
  o.error_handler = errors.handler();
  o.arena_bytes = setup.arena_bytes;
  o.release_after_cycles = setup.release_after_cycles;
  o.os = &os;
  heap = std::make_unique<Heap>(std::move(o));
  testing::prefer_proc(*heap, facade_first_proc);
}

// ---------------------------------------------------------------------------------------------
// CheckedHeap: the heap, its shadow and the objects a step allocates and frees.

CheckedHeap::CheckedHeap(const HeapSetup& setup, CheckSet checks)
    : setup_(setup), checks_(checks), test_(setup) {
  last_ = testing::snapshot(*test_.heap);
}

const SpanInfo* CheckedHeap::span_containing(const HeapSnapshot& snap, std::uintptr_t p) const {
  auto it = std::upper_bound(snap.spans.begin(), snap.spans.end(), p,
                             [](std::uintptr_t a, const SpanInfo& s) { return a < s.base; });
  if (it == snap.spans.begin()) return nullptr;
  --it;
  return p < span_end(*it) ? &*it : nullptr;
}

unsigned CheckedHeap::naive_next_free(const SpanInfo& s) {
  for (unsigned i = s.free_index; i < s.nelems; ++i) {
    const std::uintptr_t addr = s.base + std::uintptr_t{i} * s.elem_size;
    if (heap().find_object(reinterpret_cast<const void*>(addr)).kind == PointerKind::free_slot)
      return i;
  }
  return s.nelems;
}

void CheckedHeap::predict_slots(unsigned proc, std::size_t size, std::size_t align) {
  // Predict the slot when P `proc` is current and caches a span of this class with room
  // (INV-A3: the allocation cache mirrors the complement of the bits from free_index).
  const unsigned cls = testing::size_to_class(size, align);
  if (cls == 0 || last_.procs[proc].flush_gen_delta != 0) return;
  predicted_for_ = static_cast<int>(proc);
  for (const SpanInfo& s : last_.spans) {
    if (s.location == SpanLocation::cached && s.cache_proc == static_cast<int>(proc) &&
        s.span_class == cls && s.alloc_count < s.nelems) {
      predicted_slot_[s.base] = naive_next_free(s);
    }
  }
}

void* CheckedHeap::allocate(Step& step, unsigned proc, std::size_t size, std::size_t align) {
  if (step.allocated.empty()) predict_slots(proc, size, align);
  return track_allocation(step, heap().proc(proc).allocate(size, align), size, align);
}

void* CheckedHeap::allocate_facade(Step& step, std::size_t size, std::size_t align) {
  step.facade = true;
  // Keyed by the P the earlier facade steps used; finish() drops the prediction if this call
  // turns out to have used another.
  if (step.allocated.empty() && facade_proc_) predict_slots(*facade_proc_, size, align);
  const std::uint64_t general = testing::general_allocations(heap());
  void* p = heap().allocate(size, align);
  ++facade_counts_.allocations;
  if (testing::general_allocations(heap()) == general) ++facade_counts_.fast_allocations;
  note_facade_binding();
  return track_allocation(step, p, size, align);
}

void* CheckedHeap::track_allocation(Step& step, void* p, std::size_t size, std::size_t align) {
  if (p == nullptr) {
    step.allocated.push_back(0);
    return nullptr;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(p);
  step.allocated.push_back(base);
  returned_.insert(base);
  TrackedObject o;
  o.base = base;
  o.size = size;
  PointerInfo info = heap().find_object(p);
  o.usable = info.size;
  o.span_class = testing::size_to_class(size, align);
  o.seed = oracle::mix(++allocations_);
  // The quarantine (DESIGN §4): a new object never overlaps a live object, and overlaps a
  // pending one only if a sweep in this same step reclaimed it (a refill may sweep a span and
  // allocate from it at once); finish() checks that sweep against the snapshots.
  const std::size_t extent = std::max<std::size_t>(size, 1);
  auto first = objects_.lower_bound(base);
  if (first != objects_.begin()) {
    auto before = std::prev(first);
    if (before->first + std::max<std::size_t>(before->second.size, 1) > base) first = before;
  }
  for (auto it = first; it != objects_.end() && it->first < base + extent;) {
    if (!it->second.pending) {
      overlap_.push_back(fmt::format(
          "quarantine: allocation {:#x}+{} overlaps live object {:#x}+{} (slot handed out twice)",
          base, size, it->first, it->second.size));
      return p;  // not tracked: the step fails
    }
    reused_pending_.push_back(it->first);
    it = objects_.erase(it);
  }
  for_each_checked_end(o, [&](std::size_t from, std::size_t len) {
    oracle::write_pattern(static_cast<std::byte*>(p), o.seed, from, len);
  });
  objects_[base] = o;
  return p;
}

void CheckedHeap::free(Step& step, unsigned proc, std::uintptr_t base) {
  step.ptr = base;
  auto it = objects_.find(base);
  if (it != objects_.end() && !contents_intact(it->second))
    overlap_.push_back(fmt::format("object {:#x} contents changed while live", base));
  heap().proc(proc).free(reinterpret_cast<void*>(base));
  if (it != objects_.end()) it->second.pending = true;
}

void CheckedHeap::free_facade(Step& step, std::uintptr_t base) {
  step.facade = true;
  step.ptr = base;
  auto it = objects_.find(base);
  if (it != objects_.end() && !contents_intact(it->second))
    overlap_.push_back(fmt::format("object {:#x} contents changed while live", base));
  const std::uint64_t held = testing::held_frees(heap());
  heap().free(reinterpret_cast<void*>(base));
  ++facade_counts_.frees;
  if (testing::held_frees(heap()) == held) ++facade_counts_.fast_frees;
  note_facade_binding();
  if (it != objects_.end()) it->second.pending = true;
}

void CheckedHeap::note_facade_binding() {
  for (unsigned i = 0; i < setup_.procs; ++i)
    if (testing::proc_bound(heap(), i)) facade_bound_.insert(i);
}

int CheckedHeap::resolve_facade_proc(const Step& step, const HeapSnapshot& cur,
                                     std::vector<std::string>& v) {
  std::optional<unsigned> seen;
  if (facade_bound_.size() > 1)
    v.push_back(
        fmt::format("facade: {} Ps are bound to the one thread that called", facade_bound_.size()));
  if (!facade_bound_.empty()) {
    seen = *facade_bound_.begin();
  } else if (!step.allocated.empty() && step.allocated.back() != 0 &&
             testing::size_to_class(step.size, step.align) != 0) {
    // Without a binding (ProcBinding::off): the allocating P caches the span it allocated from
    // (check_allocations checks that for every P), so it names the P here.
    const SpanInfo* sp = span_containing(cur, step.allocated.back());
    if (sp && sp->location == SpanLocation::cached) seen = static_cast<unsigned>(sp->cache_proc);
  }
  facade_bound_.clear();
  if (seen && *seen != facade_first_proc)
    v.push_back(
        fmt::format("facade: the call ran on P{}, not on P{}, the thread's first choice "
                    "and idle when the step began",
                    *seen, facade_first_proc));
  if (seen) facade_proc_ = seen;
  if (!facade_proc_) {
    v.push_back(
        "facade: no binding and no small facade allocation yet, so the P of this call is unknown "
        "(the model lets a facade free or large allocation run only after a small one)");
    return -1;
  }
  // Keyed by a P the call did not use: not this step's prediction.
  if (predicted_for_ != static_cast<int>(*facade_proc_)) predicted_slot_.clear();
  return static_cast<int>(*facade_proc_);
}

}  // namespace spanheap::props
