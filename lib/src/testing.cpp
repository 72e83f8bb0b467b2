// testing: the implementation of spanheap/testing.hpp (the one seam tests use to reach inside).
#include <spanheap/testing.hpp>

#include <sys/mman.h>

#include <algorithm>

#include "cache.hpp"
#include "central.hpp"
#include "heap_state.hpp"
#include "pacing.hpp"
#include "page_map.hpp"
#include "proc.hpp"
#include "size_classes.hpp"
#include "span.hpp"
#include "stats.hpp"
#include "sweep.hpp"
#include "sweeper.hpp"
#include "validate.hpp"
#include "world.hpp"

namespace spanheap::testing {

// ---- FakeOsMemory ---------------------------------------------------------------------------

void* FakeOsMemory::reserve(std::size_t size, std::size_t align) {
  std::lock_guard<std::mutex> g(mu_);
  reserve_calls_++;
  aligns_.push_back(align);
  if (fail_reserves_ > 0) {
    fail_reserves_--;
    failures_++;
    return nullptr;
  }
  void* p = under_.reserve(size, align);
  if (p == nullptr) return nullptr;
  reserved_ += size;
  regions_.push_back(Region{reinterpret_cast<std::uintptr_t>(p), size, 0});
  return p;
}

bool FakeOsMemory::commit(void* p, std::size_t size) {
  std::lock_guard<std::mutex> g(mu_);
  commit_calls_++;
  if (fail_commits_ > 0 || (cap_ != 0 && committed_ + size > cap_)) {
    if (fail_commits_ > 0) fail_commits_--;
    failures_++;
    return false;
  }
  if (!under_.commit(p, size)) return false;
  committed_ += size;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (Region& r : regions_) {
    if (a >= r.base && a < r.base + r.size) r.committed += size;
  }
  return true;
}

void FakeOsMemory::release(void* p, std::size_t size) {
  std::lock_guard<std::mutex> g(mu_);
  released_ += size;
  under_.release(p, size);
}

void FakeOsMemory::unreserve(void* p, std::size_t size) {
  std::lock_guard<std::mutex> g(mu_);
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (auto it = regions_.begin(); it != regions_.end(); ++it) {
    if (it->base == a) {
      reserved_ -= it->size;
      committed_ -= it->committed;
      regions_.erase(it);
      break;
    }
  }
  under_.unreserve(p, size);
}

void FakeOsMemory::advise_huge_pages(void* p, std::size_t size) {
  std::lock_guard<std::mutex> g(mu_);
  advice_.push_back(Range{reinterpret_cast<std::uintptr_t>(p), size});
  under_.advise_huge_pages(p, size);
}

void FakeOsMemory::fail_reserves(unsigned n) {
  std::lock_guard<std::mutex> g(mu_);
  fail_reserves_ = n;
}
void FakeOsMemory::fail_commits(unsigned n) {
  std::lock_guard<std::mutex> g(mu_);
  fail_commits_ = n;
}
void FakeOsMemory::cap_committed(std::size_t bytes) {
  std::lock_guard<std::mutex> g(mu_);
  cap_ = bytes;
}
std::size_t FakeOsMemory::reserved_bytes() const {
  std::lock_guard<std::mutex> g(mu_);
  return reserved_;
}
std::size_t FakeOsMemory::committed_bytes() const {
  std::lock_guard<std::mutex> g(mu_);
  return committed_;
}
std::size_t FakeOsMemory::released_bytes() const {
  std::lock_guard<std::mutex> g(mu_);
  return released_;
}
unsigned FakeOsMemory::reserve_calls() const {
  std::lock_guard<std::mutex> g(mu_);
  return reserve_calls_;
}
unsigned FakeOsMemory::commit_calls() const {
  std::lock_guard<std::mutex> g(mu_);
  return commit_calls_;
}
unsigned FakeOsMemory::failures() const {
  std::lock_guard<std::mutex> g(mu_);
  return failures_;
}
std::vector<FakeOsMemory::Range> FakeOsMemory::huge_page_advice() const {
  std::lock_guard<std::mutex> g(mu_);
  return advice_;
}
std::vector<std::size_t> FakeOsMemory::reserve_aligns() const {
  std::lock_guard<std::mutex> g(mu_);
  return aligns_;
}

// ---- RecordingHandler -----------------------------------------------------------------------

ErrorHandler RecordingHandler::handler() {
  return [this](const ErrorReport& r) {
    std::lock_guard<std::mutex> g(mu_);
    reports_.push_back(r);
  };
}
std::vector<ErrorReport> RecordingHandler::take() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<ErrorReport> out;
  out.swap(reports_);
  return out;
}
std::size_t RecordingHandler::count() const {
  std::lock_guard<std::mutex> g(mu_);
  return reports_.size();
}
std::size_t RecordingHandler::count(ErrorKind kind) const {
  std::lock_guard<std::mutex> g(mu_);
  return static_cast<std::size_t>(std::count_if(
      reports_.begin(), reports_.end(), [&](const ErrorReport& r) { return r.kind == kind; }));
}
std::optional<ErrorReport> RecordingHandler::last() const {
  std::lock_guard<std::mutex> g(mu_);
  if (reports_.empty()) return std::nullopt;
  return reports_.back();
}
void RecordingHandler::clear() {
  std::lock_guard<std::mutex> g(mu_);
  reports_.clear();
}

// ---- Cycle steps ----------------------------------------------------------------------------

void begin_cycle(Heap& heap) { detail::begin_cycle(heap.state()); }
bool flush_idle(Heap& heap, unsigned i) {
  if (i >= heap.procs()) return false;
  return detail::flush_idle(heap.state(), i);
}
void ragged_barrier(Heap& heap) { detail::ragged_barrier(heap.state()); }
void flush_all(Heap& heap) { detail::flush_all(heap.state()); }

unsigned proportional_sweep(Heap& heap, std::size_t bytes) {
  detail::HeapState& h = heap.state();
  detail::ProcState& slot = detail::acquire_sweep_slot(h);
  const unsigned n = detail::deduct_sweep_credit(h, bytes);
  detail::release_proc(slot);
  return n;
}

bool sweep_done(const Heap& heap) { return detail::sweep_done(const_cast<Heap&>(heap).state()); }

ProcBinding binding(const Heap& heap) { return const_cast<Heap&>(heap).state().binding; }

bool inside_bound_call() {
  return detail::this_thread_record != nullptr &&
         detail::this_thread_record->in_call.load(std::memory_order_relaxed) != 0;
}

bool prefer_proc(Heap& heap, unsigned i) { return detail::prefer_proc(heap.state(), i); }

bool proc_bound(const Heap& heap, unsigned i) {
  return const_cast<Heap&>(heap).state().proc(i).status().load(std::memory_order_acquire) ==
         detail::ProcStatus::bound;
}

// The product names its protocol points in its own enum (protocol_points.hpp); these keep the
// seam's public names in step with it.
static_assert(static_cast<int>(ProtocolPoint::sweep_owned) ==
              static_cast<int>(detail::ProtocolPoint::sweep_owned));
static_assert(static_cast<int>(ProtocolPoint::flush_released_span) ==
              static_cast<int>(detail::ProtocolPoint::flush_released_span));
static_assert(static_cast<int>(ProtocolPoint::page_free_begin) ==
              static_cast<int>(detail::ProtocolPoint::page_free_begin));
static_assert(static_cast<int>(ProtocolPoint::free_move_to_partial) ==
              static_cast<int>(detail::ProtocolPoint::free_move_to_partial));
static_assert(static_cast<int>(ProtocolPoint::find_object_span_read) ==
              static_cast<int>(detail::ProtocolPoint::find_object_span_read));
static_assert(static_cast<int>(ProtocolPoint::stop_found_idle_proc) ==
              static_cast<int>(detail::ProtocolPoint::stop_found_idle_proc));
static_assert(static_cast<int>(ProtocolPoint::binding_published) ==
              static_cast<int>(detail::ProtocolPoint::binding_published));
static_assert(static_cast<int>(ProtocolPoint::took_idle_proc) ==
              static_cast<int>(detail::ProtocolPoint::took_idle_proc));
static_assert(static_cast<int>(ProtocolPoint::find_object_between_loads) ==
              static_cast<int>(detail::ProtocolPoint::find_object_between_loads));
static_assert(static_cast<int>(ProtocolPoint::remote_free_before_lock) ==
              static_cast<int>(detail::ProtocolPoint::remote_free_before_lock));
static_assert(static_cast<int>(ProtocolPoint::remote_free_recorded) ==
              static_cast<int>(detail::ProtocolPoint::remote_free_recorded));
static_assert(static_cast<int>(ProtocolPoint::home_arena_copied) ==
              static_cast<int>(detail::ProtocolPoint::home_arena_copied));
static_assert(static_cast<int>(ProtocolPoint::home_arena_published) ==
              static_cast<int>(detail::ProtocolPoint::home_arena_published));

void set_protocol_hook(Heap& heap, std::function<void(ProtocolPoint)> hook,
                       std::initializer_list<ProtocolPoint> only) {
  detail::HeapState& h = heap.state();
  if (!hook) {
    h.protocol_points = 0;
    h.protocol_hook = nullptr;
    return;
  }
  std::uint32_t points = 0;
  for (const ProtocolPoint p : only) points |= 1u << static_cast<unsigned>(p);
  h.protocol_hook = [hook = std::move(hook)](detail::ProtocolPoint p) {
    hook(static_cast<ProtocolPoint>(p));
  };
  h.protocol_points = only.size() == 0 ? ~0u : points;
}

std::uintptr_t span_start(const Heap& heap, const void* p) {
  detail::HeapState& h = const_cast<Heap&>(heap).state();
  // page_free marks a span free and coalesce rewrites its start under the page heap lock, so
  // holding it makes the state and the start one reading even when another thread frees the span
  // (a caller probing a slot past its own objects may hold nothing in that span).
  detail::LockGuard g(h.pages.mu);
  const detail::Span* s = detail::span_of(h, reinterpret_cast<std::uintptr_t>(p));
  if (s == nullptr || s->state.load(std::memory_order_acquire) != detail::SpanState::in_use)
    return 0;
  return s->start;
}

void fail_thread_starts(Heap& heap, unsigned n) NO_THREAD_SAFETY_ANALYSIS {
  heap.state().fail_thread_starts = n;
}

// ---- Snapshots ------------------------------------------------------------------------------

HeapSnapshot snapshot(Heap& heap, VerifyResult* verify) {
  HeapSnapshot snap;
  snapshot(heap, snap, verify);
  return snap;
}

void snapshot(Heap& heap, HeapSnapshot& snap, VerifyResult* verify) {
  detail::HeapState& h = heap.state();
  snap.spans.clear();
  snap.procs.clear();
  detail::LockGuard g(h.world.cycle_mu);
  detail::WorldStopped stopped = detail::stop_the_world(h);
  const std::uint32_t sg = h.sg();
  snap.sweepgen = sg;
  snap.reuse = h.options.reuse;
  std::vector<Violation>* violations = verify != nullptr ? &verify->violations : nullptr;
  if (violations != nullptr) violations->clear();
  const std::vector<detail::CensusEntry>& census = detail::take_census(h, stopped, violations);
  if (violations != nullptr) detail::validate_census(h, census, *violations);
  snap.spans.reserve(census.size());
  for (const detail::CensusEntry& e : census) {
    const detail::Span* s = e.span;
    SpanInfo info;
    info.base = s->start;
    info.npages = s->npages;
    info.in_use = s->state.load(std::memory_order_relaxed) == detail::SpanState::in_use;
    info.location = e.location;
    info.cache_proc = e.cache_proc;
    info.owned = e.owned;
    info.released = s->released;
    info.need_zero = s->need_zero.load(std::memory_order_relaxed);
    if (info.in_use) {
      info.span_class = s->cls();
      info.elem_size = s->elem_size;
      info.nelems = s->nelems;
      info.free_index = s->free_index.load(std::memory_order_relaxed);
      info.alloc_count = s->alloc_count;
      info.pending_frees = detail::count_pending(*s);
      info.worth_collecting = !s->is_large() && detail::worth_collecting(*s);
      info.sweepgen_delta =
          static_cast<std::int32_t>(s->sweepgen.load(std::memory_order_relaxed) - sg);
    }
    snap.spans.push_back(info);
  }
  snap.procs.reserve(h.nprocs);
  for (unsigned i = 0; i < h.nprocs; i++) {
    detail::ProcState& p = h.proc(i);
    ProcInfo pi;
    pi.index = i;
    pi.flush_gen_delta =
        static_cast<std::int32_t>(p.cache.flush_gen.load(std::memory_order_relaxed) - sg);
    pi.idle = true;  // every P is stopped by us, so none is inside a call
    for (unsigned c = 1; c < detail::num_size_classes(); c++)
      pi.cached_spans += (p.cache.alloc[c].load(std::memory_order_relaxed) != &detail::empty_span) +
                         p.cache.owned[c].count;
    snap.procs.push_back(pi);
  }
  snap.sweep_done = detail::sweep_done(h);
  snap.active_sweepers = static_cast<unsigned>(h.sweep.active.load());
  snap.stats = detail::collect_stats(h);
  snap.pacer_trigger = h.pacer.trigger.load(std::memory_order_relaxed);
  snap.pacer_charged = h.pacer.allocated.load(std::memory_order_relaxed);
  snap.pacer_live_at_bump = h.pacer.live_at_bump.load(std::memory_order_relaxed);
  detail::start_the_world(h, std::move(stopped));
}

// Declared with the shared rules (spanheap/invariants.hpp), but it reads a snapshot's SpanInfo,
// which only the seam has: the verifier sums its census itself.
void SpanTotals::add(const SpanInfo& s) {
  const std::uint64_t bytes = std::uint64_t{s.npages} * page_size;
  if (!s.in_use) {
    (s.released ? released_bytes : free_bytes) += bytes;
    return;
  }
  in_use_bytes += bytes;
  objects += s.alloc_count;
  object_bytes += std::uint64_t{s.alloc_count} * s.elem_size;
  pending_frees += s.pending_frees;
}

unsigned max_owned_spans() noexcept { return detail::max_owned_spans; }

unsigned collect_threshold(unsigned nelems) noexcept { return detail::collect_threshold(nelems); }

namespace {

// One per-P counter of Cache summed over every P and sweeper slot of `heap`.
std::uint64_t sum_over_slots(const Heap& heap, std::atomic<std::uint64_t> detail::Cache::*counter) {
  const detail::HeapState& h = const_cast<Heap&>(heap).state();
  std::uint64_t n = 0;
  for (unsigned i = 0; i < h.nslots; i++)
    n += (h.procs[i].cache.*counter).load(std::memory_order_relaxed);
  return n;
}

}  // namespace

std::uint64_t held_frees(const Heap& heap) {
  return sum_over_slots(heap, &detail::Cache::held_frees);
}

std::uint64_t general_allocations(const Heap& heap) {
  return sum_over_slots(heap, &detail::Cache::general_allocs);
}

std::vector<SizeClassInfo> size_classes() {
  std::vector<SizeClassInfo> out;
  for (unsigned c = 1; c < detail::num_size_classes(); c++) {
    const detail::SizeClass& sc = detail::size_class(c);
    out.push_back(
        SizeClassInfo{c, sc.size, sc.npages, sc.nelems,
                      std::size_t{sc.npages} * page_size - std::size_t{sc.nelems} * sc.size});
  }
  return out;
}

unsigned size_to_class(std::size_t size, std::size_t align) {
  return detail::size_to_class(size, align);
}

PacingPlan plan_pacing(std::uint64_t survivors, unsigned gc_percent, std::uint64_t memory_limit,
                       std::uint64_t committed, std::uint64_t pages_to_sweep) {
  const detail::PacingPlan p =
      detail::plan_pacing(survivors, gc_percent, memory_limit, committed, pages_to_sweep);
  return PacingPlan{p.trigger, p.pages_per_byte};
}
std::uint64_t sweep_target(double pages_per_byte, std::uint64_t allocated) {
  return detail::sweep_target(pages_per_byte, allocated);
}
std::uint64_t pacing_trigger_floor() noexcept { return detail::trigger_floor; }

}  // namespace spanheap::testing
