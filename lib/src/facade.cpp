// facade: the public spanheap::Heap and spanheap::Proc, each call handed to the detail layer
// (heap.cpp for allocation and free, world.cpp for cycles, validate.cpp and stats.cpp), and the
// construction and destruction of the HeapState behind a Heap.
// Heap::allocate, Heap::allocate_zeroed and Heap::free are defined in heap.cpp, beside the fast
// paths they inline.
#include <spanheap/spanheap.hpp>

#include <thread>
#include <type_traits>

#include "cache.hpp"
#include "fork.hpp"
#include "heap.hpp"
#include "pacing.hpp"
#include "page_heap.hpp"
#include "page_map.hpp"
#include "proc.hpp"
#include "report.hpp"
#include "stats.hpp"
#include "sweep.hpp"
#include "sweeper.hpp"
#include "validate.hpp"
#include "world.hpp"

namespace spanheap::detail {
namespace {

std::atomic<std::uint64_t> next_heap_uid{1};

// Sweeper slots: one per background sweeper plus one for sweep_one() / proportional steps
// driven from outside a P.
unsigned sweep_slots(const Options& o) { return (o.sweepers == 0 ? 1 : o.sweepers) + 1; }

unsigned resolve_procs(const Options& o) {
  unsigned n = o.procs;
  if (n == 0) n = std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  return n > max_procs ? max_procs : n;  // hardware_concurrency() may exceed it
}

}  // namespace

HeapState::HeapState(const Options& o)
    : options(o),
      os(o.os != nullptr ? o.os : &system_memory()),
      uid(next_heap_uid.fetch_add(1, std::memory_order_relaxed)),
      trace(o.trace || trace_from_env()) {
  validate_options(*this);
  nprocs = resolve_procs(options);
  nslots = nprocs + sweep_slots(options);
  checks = options.checks;
  allocation_hooks =
      options.debug.clobber_freed || options.debug.poison_freed || options.debug.collect_every != 0;
  // A key no thread holds (uid 0 names no heap) when every allocation must run the hooks: the
  // bound fast paths then never test for them.
  bound_key = allocation_hooks ? 0 : ProcAffinity::make_key(uid, ProcBinding::automatic);
  binding = resolve_binding(options.binding);
  procs = std::make_unique<ProcState[]>(nslots);
  // Binding off writes a status word at every call: a line each (ProcStatusLine).
  status_stride = binding == ProcBinding::off ? ProcStatusLine::words : 1;
  status_slots = (nslots + 3) & ~3u;
  statuses = std::make_unique<ProcStatusLine[]>(
      (status_slots * status_stride + ProcStatusLine::words - 1) / ProcStatusLine::words);
  for (unsigned i = 0; i < nslots; i++) {
    procs[i].status_word = &status_word(i);
    procs[i].index = i;
    procs[i].heap = this;
    procs[i].has_cache = i < nprocs;
    cache_init(*this, procs[i].cache, 0);
  }
  for (unsigned c = 0; c < max_size_classes; c++)
    central[c].span_class = static_cast<std::uint8_t>(c);
  if (options.gc_percent != 0) pacer.trigger.store(trigger_floor, std::memory_order_relaxed);
  sweepers_wanted = options.sweepers;  // started at the first cycle (wake_background_sweepers)
  fork_register(*this);
}

HeapState::~HeapState() {
  fork_unregister(*this);
  {
    LockGuard g(world.cycle_mu);
    stop_background_sweepers(*this);
  }
  unsigned busy = 0;
  for (unsigned i = 0; i < nslots; i++) {
    const ProcStatus status = procs[i].status().load(std::memory_order_acquire);
    const ThreadRecord* binder = procs[i].binder.load(std::memory_order_acquire);
    if (status == ProcStatus::running || (status == ProcStatus::bound && binder != nullptr &&
                                          binder->in_call.load(std::memory_order_acquire) != 0))
      busy++;
  }
  if (busy != 0) {
    report(this, ErrorKind::misuse, nullptr,
           "heap destroyed while {} P(s) are inside heap calls; waiting for them to leave", busy);
  }
  {
    LockGuard g(world.cycle_mu);
    WorldStopped stopped = stop_the_world(*this);
    (void)stopped;  // never restarted: the heap is going away
  }
  page_heap_destroy(*this);
}

}  // namespace spanheap::detail

namespace spanheap {

using detail::HeapState;

// Heap::state_ is declared before home_ (the fast paths hand their slow exits its address, the
// Heap's own), so home_ is destroyed first: nothing may run at its destruction.
static_assert(std::is_trivially_destructible_v<detail::HomeArena>);

Heap::Heap() : Heap(Options::from_env()) {}
Heap::Heap(Options options) : state_(std::make_unique<HeapState>(options)) {
  // No call has run: nothing reads home_ yet, and the first allocation's publication orders
  // everything after it (INV-H1).
  home_.arena.store(&detail::no_arena, std::memory_order_relaxed);
  state_->home = &home_;
  bound_key_ = state_->bound_key;
  state_->bound_key_copy = &bound_key_;
}
Heap::~Heap() = default;

std::size_t Heap::usable_size(const void* p) const {
  const PointerInfo info = detail::find_object(*state_, p);
  if (info.kind == PointerKind::object_start && !info.pending_free) return info.size;
  detail::report(state_.get(), ErrorKind::misuse, p,
                 "usable_size of a pointer that is not a live object's start (ptr={}, {})", p,
                 info.kind == PointerKind::object_start ? "freed, pending sweep"
                 : info.kind == PointerKind::interior   ? "interior pointer"
                 : info.kind == PointerKind::free_slot  ? "free slot"
                 : info.kind == PointerKind::foreign    ? "foreign pointer"
                 : info.kind == PointerKind::other_heap ? "another heap's pointer"
                                                        : "free memory");
  return 0;
}

bool Heap::owns(const void* p) const noexcept {
  const detail::Arena* a = detail::registry_lookup(reinterpret_cast<std::uintptr_t>(p));
  return a != nullptr && a->owner == state_.get();
}

PointerInfo Heap::find_object(const void* p) const noexcept {
  return detail::find_object(*state_, p);
}

void Heap::collect() { detail::collect(*state_); }

bool Heap::sweep_one() {
  detail::ProcState& slot = detail::acquire_sweep_slot(*state_);
  const bool swept = detail::sweep_one(*state_, detail::SweepKind::on_demand);
  detail::release_proc(slot);
  return swept;
}

Stats Heap::stats() const { return detail::collect_stats(*state_); }

VerifyResult Heap::verify() { return detail::verify_heap(*state_); }

Proc Heap::proc(unsigned i) {
  if (i >= state_->nprocs) {
    detail::report(state_.get(), ErrorKind::misuse, nullptr,
                   "Heap::proc({}): the heap has only {} P(s); using P 0", i, state_->nprocs);
    i = 0;
  }
  return Proc(state_.get(), i);
}

unsigned Heap::procs() const noexcept { return state_->nprocs; }

const Options& Heap::options() const noexcept { return state_->options; }

void* Proc::allocate(std::size_t size, std::size_t align) {
  return detail::heap_allocate(*heap_, static_cast<int>(index_), size, align);
}

void Proc::free(void* p) { detail::heap_free(*heap_, static_cast<int>(index_), p); }

void Proc::wake() {
  detail::ProcState& p = detail::acquire_proc(*heap_, index_);
  detail::release_proc(p);
}

}  // namespace spanheap
