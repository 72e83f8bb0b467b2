// facade: the public spanheap::Heap and spanheap::Proc, each call handed to the detail layer
// (heap.cpp for allocation and free, world.cpp for cycles, validate.cpp and stats.cpp).
// Heap::allocate and Heap::free are defined in heap.cpp, beside the fast paths they inline.
#include <spanheap/spanheap.hpp>

#include "heap.hpp"
#include "page_map.hpp"
#include "proc.hpp"
#include "report.hpp"
#include "stats.hpp"
#include "sweep.hpp"
#include "validate.hpp"
#include "world.hpp"

namespace spanheap {

using detail::HeapState;

Heap::Heap() : Heap(Options::from_env()) {}
Heap::Heap(Options options) : state_(std::make_unique<HeapState>(options)) {}
Heap::~Heap() = default;

void* Heap::allocate_zeroed(std::size_t size, std::size_t align) {
  return detail::heap_allocate(*state_, -1, size, align, /*retried=*/false, /*zero=*/true);
}

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
