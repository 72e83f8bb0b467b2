// The roles drivers are assembled from (see workers.hpp).
#include "workers.hpp"

#include <fmt/format.h>
#include <spanheap/oracle/snapshot_check.hpp>

#include <algorithm>
#include <chrono>
#include <map>

namespace spanheap::stress {

// ---------------------------------------------------------------------------------------------
// Slots.

std::uint64_t Slots::drain(Run& run, Heap& heap, Tally& tally, std::atomic<std::uint64_t>& leaked) {
  std::uint64_t n = 0;
  for (auto& s : slots_) {
    void* p = s.exchange(nullptr, std::memory_order_acq_rel);
    if (p == nullptr) continue;
    Obj o;
    std::string why;
    if (!from_header(p, &o, &why) || !check(o, &why)) {
      run.fail(why);
      leaked.fetch_add(1);
      continue;
    }
    heap.free(p);
    ++tally.frees;
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Mutator.

Mutator::Mutator(Run& run, Heap& heap, Slots* slots, std::uint64_t stream, MutatorMix mix,
                 std::atomic<std::uint64_t>& leaked)
    : run_(run),
      heap_(heap),
      slots_(slots),
      rng_(run.config().seed, stream),
      mix_(mix),
      leaked_(leaked) {
  held_.reserve(mix_.max_held + 8);
}

Mutator::~Mutator() = default;

void* Mutator::do_alloc(std::size_t size, std::size_t align) {
  if (mix_.proc_handle_percent != 0 && rng_.below(100) < mix_.proc_handle_percent) {
    return heap_.proc(static_cast<unsigned>(rng_.below(heap_.procs()))).allocate(size, align);
  }
  if (mix_.zeroed_percent != 0 && rng_.below(100) < mix_.zeroed_percent) {
    void* p = heap_.allocate_zeroed(size, align);
    if (p != nullptr) check_zeroed(p, size, align);
    return p;
  }
  return heap_.allocate(size, align);
}

void Mutator::check_zeroed(const void* p, std::size_t size, std::size_t align) {
  ++tally_.zeroed;
  const auto* bytes = static_cast<const unsigned char*>(p);
  const auto* end = bytes + size;
  const auto* nonzero = std::find_if(bytes, end, [](unsigned char b) { return b != 0; });
  if (nonzero == end) return;
  run_.fail(fmt::format("allocate_zeroed({}, {}) returned {} with byte {} = {:#04x}: not cleared",
                        size, align, p, nonzero - bytes, *nonzero));
}

void Mutator::do_free(void* p) {
  if (mix_.proc_handle_percent != 0 && rng_.below(100) < mix_.proc_handle_percent) {
    heap_.proc(static_cast<unsigned>(rng_.below(heap_.procs()))).free(p);
    return;
  }
  heap_.free(p);
}

bool Mutator::check_obj(const Obj& o) {
  std::string why;
  ++tally_.checks;
  if (check(o, &why)) return true;
  run_.fail(why);
  return false;
}

bool Mutator::release(Obj o) {
  if (!check_obj(o)) {
    leaked_.fetch_add(
        1);  // never hand a damaged object back: the heap would see a second owner's free
    return false;
  }
  do_free(o.p);
  ++tally_.frees;
  return true;
}

bool Mutator::allocate_one() {
  std::size_t size = draw_size(rng_, run_.config().max_large, mix_.large_per_mille);
  return allocate_sized(size, draw_align(rng_));
}

bool Mutator::allocate_sized(std::size_t size, std::size_t align) {
  if (held_.size() >= mix_.max_held && !free_one()) return false;
  std::string why;
  Obj o = make_object(
      heap_, rng_, size, align, [this](std::size_t s, std::size_t a) { return do_alloc(s, a); },
      &why);
  if (o.p == nullptr) {
    run_.fail(why);
    return false;
  }
  ++tally_.allocs;
  tally_.bytes += size;
  if (!why.empty()) {
    run_.fail(why);
    leaked_.fetch_add(1);
    return false;
  }
  if (rng_.chance(1, 8)) {
    PointerInfo info = heap_.find_object(o.p);
    if (info.kind != PointerKind::object_start || info.base != o.p || info.pending_free ||
        info.size < size) {
      run_.fail(fmt::format(
          "find_object({}) right after allocate({}, {}): kind {}, base {}, size {}, pending {}",
          o.p, size, align, static_cast<int>(info.kind), info.base, info.size, info.pending_free));
      leaked_.fetch_add(1);
      return false;
    }
  }
  held_.push_back(o);
  return true;
}

bool Mutator::free_one() {
  if (held_.empty()) return false;
  std::size_t i = rng_.below(held_.size());
  Obj o = held_[i];
  held_[i] = held_.back();
  held_.pop_back();
  return release(o);
}

void* Mutator::give_away() {
  for (int tries = 0; tries < 4 && !held_.empty(); ++tries) {
    std::size_t i = rng_.below(held_.size());
    if (held_[i].size < min_transfer_size) continue;
    Obj o = held_[i];
    held_[i] = held_.back();
    held_.pop_back();
    if (!check_obj(o)) {
      leaked_.fetch_add(1);
      return nullptr;
    }
    ++tally_.transfers;
    return o.p;
  }
  return nullptr;
}

bool Mutator::adopt(void* p) {
  Obj o;
  std::string why;
  ++tally_.checks;
  if (!from_header(p, &o, &why) || !check(o, &why)) {
    run_.fail(fmt::format("object received from another thread: {}", why));
    leaked_.fetch_add(1);
    return false;
  }
  if (heap_.usable_size(p) < o.size) {
    run_.fail(fmt::format("object {} received from another thread: usable_size {} < its size {}", p,
                          heap_.usable_size(p), o.size));
    leaked_.fetch_add(1);
    return false;
  }
  held_.push_back(o);
  if (held_.size() > mix_.max_held) return free_one();
  return true;
}

bool Mutator::transfer_one(Slots& slots) {
  void* mine = give_away();
  if (mine == nullptr) return !run_.failed();
  void* got = slots.exchange(rng_.below(slots.size()), mine);
  if (got == nullptr) return true;
  return adopt(got);
}

bool Mutator::step() {
  std::uint64_t r = rng_.below(100);
  bool ok;
  if (r < mix_.alloc) {
    ok = allocate_one();
  } else if (r < mix_.alloc + mix_.free) {
    ok = held_.empty() ? allocate_one() : free_one();
  } else if (r < mix_.alloc + mix_.free + mix_.transfer && slots_ != nullptr) {
    ok = transfer_one(*slots_);
  } else {
    ok = held_.empty() || check_obj(held_[rng_.below(held_.size())]);
  }
  return ok && !run_.failed();
}

void Mutator::free_all() {
  while (!held_.empty()) {
    Obj o = held_.back();
    held_.pop_back();
    release(o);
  }
}

// ---------------------------------------------------------------------------------------------
// Collector, verifier, sweeper.

void collector_loop(Run& run, Heap& heap, std::uint64_t stream, bool fast, bool split,
                    PauseLog& log) {
  using clock = std::chrono::steady_clock;
  Rng rng(run.config().seed, stream);
  std::vector<std::uint64_t> ns;
  const auto mean = run.config().stw_every_us;
  while (!run.stopping()) {
    if (!fast) run.nap(std::chrono::microseconds(rng.below(2 * std::uint64_t{mean} + 1)));
    if (run.stopping()) break;
    const auto me = static_cast<unsigned>(stream);
    run.collect_begins(me);
    if (split && rng.chance(1, 4)) {
      // The cycle in two halves with a gap: Ps that wake in the gap find their cache stale and must
      // flush it themselves before allocating.
      testing::begin_cycle(heap);
      run.nap(std::chrono::microseconds(rng.below(std::uint64_t{mean} + 50)));
      if (rng.chance(1, 2)) {
        for (unsigned i = 0; i < heap.procs(); ++i) testing::flush_idle(heap, i);
      }
      testing::ragged_barrier(heap);
      run.collect_ends(me);
      log.count.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    auto t0 = clock::now();
    heap.collect();
    run.collect_ends(me);
    ns.push_back(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count()));
    log.count.fetch_add(1, std::memory_order_relaxed);
  }
  log.add(ns);
}

void verifier_loop(Run& run, Heap& heap) {
  const auto period = std::chrono::milliseconds(run.config().verify_every_ms);
  if (period.count() == 0) return;
  for (std::uint64_t round = 0; !run.stopping(); ++round) {
    run.nap(period);
    if (run.stopping()) break;
    if (round % 2 == 0) {
      VerifyResult r = heap.verify();
      if (!r.ok()) {
        run.fail(
            fmt::format("verify() found {} violations:\n{}", r.violations.size(), r.to_string()));
      }
    } else {
      const auto problems = oracle::snapshot_violations(testing::snapshot(heap));
      if (!problems.empty()) {
        run.fail(fmt::format("snapshot oracle found {} violations:\n{}", problems.size(),
                             oracle::join(problems)));
      }
    }
  }
}

void sweeper_loop(Run& run, Heap& heap, SharedTally& tally) {
  Tally t;
  while (!run.stopping()) {
    if (heap.sweep_one()) {
      if (++t.sweeps % 64 == 0) tally.add(t);
    } else {
      std::this_thread::yield();
    }
  }
  tally.add(t);
}

}  // namespace spanheap::stress
