// error_props: bad input never corrupts the heap (DESIGN §4, §6 ErrorReport).
// Covers DESIGN §8 under hostile input: arbitrary bad frees (foreign pointer, pointer owned by
// another heap, interior pointer, free slot never allocated, slot reclaimed by an earlier sweep,
// free pages, span tail, double free of a pending object) and bad allocation requests (size
// overflow, bad alignment), interleaved with valid work, change nothing but the error log: the
// snapshot after equals the snapshot before except stats.errors, exactly one report is made and
// its kind is the one the pointer calls for; no live object is reclaimed and no slot is handed out
// twice afterwards (the shared oracle keeps checking every later step). The one change allowed: a
// pointer into a span cached by an idle stale P may make the heap flush that P (as the ragged
// barrier would) so the span is swept before the verdict, and a pointer into an unswept span may
// make the heap sweep that span on demand (Go's ensureSwept); the oracle checks both exactly.
#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <set>

#include "support/heap_model.hpp"
#include "support/prop_runner.hpp"

namespace spanheap::props {
namespace {

alignas(64) unsigned char g_foreign[4096];

// A second heap whose objects are "owned by another heap" for every test case.
Heap& other_heap() {
  static TestHeap* h = [] {
    HeapSetup s;
    s.procs = 1;
    return new TestHeap(s);
  }();
  return *h->heap;
}

// Everything a bad input may not change. One exception, which the shared oracle checks exactly:
// when the pointer falls in a span that an idle stale P caches, the heap may flush that P (as the
// ragged barrier would) to have the span swept before it decides; `helper` names that P, whose
// spans, flush_gen and the sweep/reclaim counters it moves are then left to the oracle.
std::vector<std::string> snapshot_differences(const HeapSnapshot& a, const HeapSnapshot& b,
                                              int helper, std::uintptr_t swept_target) {
  const bool moved = helper >= 0 || swept_target != 0;
  std::vector<std::string> v;
  if (a.sweepgen != b.sweepgen) v.push_back("sweepgen changed");
  if (!moved && a.sweep_done != b.sweep_done) v.push_back("sweep_done changed");
  std::map<std::uintptr_t, const SpanInfo*> after;
  for (const SpanInfo& y : b.spans) after[y.base] = &y;
  // A large target span that the on-demand sweep emptied is released, and its pages coalesce
  // with the free runs on either side: those runs may change or merge away.
  std::uintptr_t released_lo = 0, released_hi = 0;
  for (const SpanInfo& x : a.spans) {
    if (x.base != swept_target) continue;
    auto it = after.find(x.base);
    if (it == after.end() || !it->second->in_use) {
      released_lo = x.base;
      released_hi = x.base + x.npages * page_size;
    }
  }
  for (const SpanInfo& x : a.spans) {
    if (helper >= 0 && x.cache_proc == helper) continue;  // swept by the helped flush
    if (x.base == swept_target) continue;                 // swept on demand (Go's ensureSwept)
    if (released_hi != 0 && !x.in_use &&
        (x.base + x.npages * page_size == released_lo || x.base == released_hi))
      continue;  // a free neighbour the released target coalesced with
    auto it = after.find(x.base);
    if (it == after.end()) {
      v.push_back(describe(x) + " -> gone");
      continue;
    }
    const SpanInfo& y = *it->second;
    if (x.npages != y.npages || x.in_use != y.in_use || x.span_class != y.span_class ||
        x.free_index != y.free_index || x.alloc_count != y.alloc_count ||
        x.pending_frees != y.pending_frees || x.sweepgen_delta != y.sweepgen_delta ||
        x.location != y.location || x.cache_proc != y.cache_proc || x.released != y.released)
      v.push_back(describe(x) + " -> " + describe(y));
  }
  if (!moved && a.spans.size() != b.spans.size())
    v.push_back(fmt::format("span count {} -> {}", a.spans.size(), b.spans.size()));
  for (std::size_t i = 0; i < std::min(a.procs.size(), b.procs.size()); ++i)
    if (static_cast<int>(i) != helper &&
        (a.procs[i].flush_gen_delta != b.procs[i].flush_gen_delta ||
         a.procs[i].cached_spans != b.procs[i].cached_spans))
      v.push_back(fmt::format("P{} changed", i));
  const Stats &s = a.stats, &t = b.stats;
  auto same = [&](const char* what, std::uint64_t x, std::uint64_t y) {
    if (x != y) v.push_back(fmt::format("stats.{} {} -> {}", what, x, y));
  };
  same("reserved_bytes", s.reserved_bytes, t.reserved_bytes);
  same("allocations", s.allocations, t.allocations);
  same("frees", s.frees, t.frees);
  same("flushes_lazy", s.flushes_lazy, t.flushes_lazy);
  if (swept_target == 0) same("swept_on_demand", s.swept_on_demand, t.swept_on_demand);
  same("errors", s.errors + 1, t.errors);
  if (!moved) {
    same("live_bytes", s.live_bytes, t.live_bytes);
    same("span_bytes", s.span_bytes, t.span_bytes);
    same("mapped_bytes", s.mapped_bytes, t.mapped_bytes);
    same("released_bytes", s.released_bytes, t.released_bytes);
    same("live_objects", s.live_objects, t.live_objects);
    same("pending_frees", s.pending_frees, t.pending_frees);
    same("swept_by_flush", s.swept_by_flush, t.swept_by_flush);
    same("flushes_barrier", s.flushes_barrier, t.flushes_barrier);
  }
  return v;
}

enum class Target : std::uint8_t {
  foreign,
  other_heap,
  interior,
  pending,
  reclaimed,
  never_allocated,
  free_pages,
  span_tail,
  size_overflow,
  bad_alignment,
};
const char* to_string(Target t) {
  static const char* names[] = {"foreign",       "other_heap",      "interior",   "pending",
                                "reclaimed",     "never_allocated", "free_pages", "span_tail",
                                "size_overflow", "bad_alignment"};
  return names[static_cast<int>(t)];
}

// The pointers in the heap `before` shows that make a bad input of kind `tg`, and the reports it
// may get; false when there are none. Kinds that need no candidate return true.
bool choose_candidates(Target tg, CheckedHeap& t, const HeapSnapshot& before,
                       std::vector<std::uintptr_t>& candidates, std::vector<ErrorKind>& kinds) {
  candidates.clear();
  switch (tg) {
    case Target::interior:
      for (const auto& [b, o] : t.objects())
        if (!o.pending && o.usable >= 16) candidates.push_back(b + 8);
      kinds = {ErrorKind::interior_free};
      break;
    case Target::pending:
      for (const auto& [b, o] : t.objects())
        if (o.pending) candidates.push_back(b);
      kinds = {ErrorKind::double_free};
      break;
    case Target::reclaimed:
    case Target::never_allocated:
      for (const SpanInfo& s : before.spans) {
        if (!s.in_use || s.span_class == 0) continue;
        for (unsigned i = 0; i < s.nelems && candidates.size() < 64; ++i) {
          const std::uintptr_t a = s.base + std::uintptr_t{i} * s.elem_size;
          if (t.heap().find_object(reinterpret_cast<void*>(a)).kind != PointerKind::free_slot)
            continue;
          const bool seen = t.ever_returned().count(a) > 0;
          if (seen == (tg == Target::reclaimed)) candidates.push_back(a);
        }
      }
      // A slot reclaimed in an earlier life of the span's pages may read as never allocated.
      kinds = tg == Target::reclaimed
                  ? std::vector<ErrorKind>{ErrorKind::double_free, ErrorKind::invalid_free}
                  : std::vector<ErrorKind>{ErrorKind::invalid_free};
      break;
    case Target::free_pages:
      for (const SpanInfo& s : before.spans)
        if (!s.in_use) candidates.push_back(s.base + page_size * (s.npages - 1));
      kinds = {ErrorKind::invalid_free};
      break;  // refined in BadInput::run once the candidate is chosen
    case Target::span_tail:
      for (const SpanInfo& s : before.spans)
        if (s.in_use && s.span_class != 0 && s.elem_size * s.nelems < s.npages * page_size)
          candidates.push_back(s.base + s.elem_size * s.nelems);
      kinds = {ErrorKind::invalid_free};
      break;
    default:
      return true;
  }
  return !candidates.empty();
}

struct BadInput : Command {
  unsigned proc;
  Target target;
  unsigned pick;  // which candidate, modulo their number
  BadInput(unsigned p, Target t, unsigned k) : proc(p), target(t), pick(k) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(proc < m.setup.procs);
    RC_PRE(m.stale[proc] == Staleness::current);  // a stale P would flush: a legitimate change
  }
  void apply(Model& m) const override {
    for (auto& st : m.stale)  // an idle stale P may be flushed to sweep the target's span
      if (st == Staleness::stale) st = Staleness::unknown;
  }
  void run(const Model& m, Sut& sut) const override {
    CheckedHeap& t = sut.checked;
    const HeapSnapshot before = t.last();
    Step step;
    step.op = Op::bad_free;
    step.proc = static_cast<int>(proc);
    std::vector<std::uintptr_t> candidates;
    std::vector<ErrorKind> kinds;
    Target used = target;
    if (!choose_candidates(target, t, before, candidates, kinds))
      used = pick % 2 ? Target::foreign : Target::other_heap;
    Heap& heap = t.heap();
    switch (used) {
      case Target::foreign:
        step.ptr = reinterpret_cast<std::uintptr_t>(g_foreign + 16 * (pick % 64));
        kinds = {ErrorKind::foreign_free};
        break;
      case Target::other_heap: {
        static void* theirs = other_heap().allocate(64);
        step.ptr = reinterpret_cast<std::uintptr_t>(theirs);
        kinds = {ErrorKind::misuse};
        break;
      }
      case Target::size_overflow:
        kinds = {ErrorKind::size_overflow};
        break;
      case Target::bad_alignment:
        kinds = {ErrorKind::bad_alignment};
        break;
      default:
        step.ptr = candidates[pick % candidates.size()];
    }
    if (used == Target::free_pages) {
      // Pages that once held objects remember it: a free there may be named a double free.
      if (t.page_ever_in_use(step.ptr)) kinds = {ErrorKind::invalid_free, ErrorKind::double_free};
    }
    step.expected_errors = kinds;
    if (used == Target::size_overflow) {
      if (heap.proc(proc).allocate(max_alloc_size + 1 + pick) != nullptr)
        RC_FAIL("size overflow allocated");
    } else if (used == Target::bad_alignment) {
      // Not a power of two, or a power of two past max_alloc_size (the largest alignment honoured).
      const std::size_t align = pick % 2 ? 3 * (pick % 100 + 1) : 2 * max_alloc_size;
      if (heap.proc(proc).allocate(64, align) != nullptr) RC_FAIL("bad alignment allocated");
    } else {
      heap.proc(proc).free(reinterpret_cast<void*>(step.ptr));
    }
    const HeapSnapshot after = testing::snapshot(heap);
    int helper = -1;
    if (const SpanInfo* sp = t.span_containing(before, step.ptr))
      if (sp->in_use && sp->sweepgen_delta == 1 && after.procs[sp->cache_proc].flush_gen_delta == 0)
        helper = sp->cache_proc;
    // The heap may sweep the target's own unswept span before it judges the pointer (Go's
    // ensureSwept); the oracle checks that sweep like any other.
    std::uintptr_t swept_target = 0;
    if (const SpanInfo* sp = t.span_containing(before, step.ptr))
      if (sp->in_use && sp->sweepgen_delta == -2) swept_target = sp->base;
    std::vector<std::string> diff = snapshot_differences(before, after, helper, swept_target);
    // If that sweep emptied the span and freed its pages, the pointer now lies in pages that
    // held objects: a double free is as fair a verdict as an invalid one.
    const SpanInfo* now = t.span_containing(after, step.ptr);
    if (swept_target != 0 && (now == nullptr || !now->in_use) &&
        std::find(kinds.begin(), kinds.end(), ErrorKind::invalid_free) != kinds.end())
      step.expected_errors.push_back(ErrorKind::double_free);
    if (!diff.empty())
      RC_FAIL(fmt::format("bad input ({} {:#x}) changed the heap:\n{}", to_string(used), step.ptr,
                          join(diff)));
    finish_command(*this, m, sut, step);
  }
  void show(std::ostream& os) const override {
    os << "bad_input(P" << proc << ", " << to_string(target) << ", pick " << pick << ")";
  }
};

}  // namespace

SPANHEAP_PROP(Errors, BadInputChangesNothing, 100, 60, ()) {
  HeapSetup s;
  s.procs = 2;
  CommandMix mix;
  mix.small_sizes = {16, 48, 1024};
  mix.extra.push_back({40, [](const Model& m) {
                         return rc::gen::exec([procs = m.setup.procs] {
                           return CommandPtr(std::make_shared<const BadInput>(
                               *rc::gen::inRange(0u, procs),
                               static_cast<Target>(*rc::gen::inRange(
                                   0, static_cast<int>(Target::bad_alignment) + 1)),
                               *rc::gen::inRange(0u, 1000u)));
                         });
                       }});
  CheckSet checks;
  checks.slots = false;
  check_stateful(s, mix, checks);
}

}  // namespace spanheap::props
