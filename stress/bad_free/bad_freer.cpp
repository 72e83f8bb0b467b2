// The bad-free threads of bad_free_stress (bad_freer.hpp): each throws bad frees of the kinds it
// can throw safely while the heap sweeps, empties and recycles spans, and checks every report.
#include "bad_freer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace spanheap::stress::bad_free_driver {

thread_local bool expecting = false;
std::atomic<std::uint64_t> racing_both_returned{0};
std::atomic<std::uint64_t> raced_reports{0};
thread_local int reported_kind = -1;
thread_local std::string reported_message;

void BadFreer::step() {
  if (!leader_) partner_round();
  switch (rng_.below(8)) {
    case 0: {
      int local = 0;
      throw_free(Throw::foreign, &local, kind_bit(ErrorKind::foreign_free));
      break;
    }
    case 1:
      throw_free(Throw::wrong_heap, other_object_, kind_bit(ErrorKind::misuse));
      break;
    case 2:
    case 3:
      misaligned();
      break;
    case 4:
      shared_churn();
      break;
    default:
      private_step();
      break;
  }
  if (anchors_.size() > 200 && victims_.empty()) drop_anchors();
}

void BadFreer::finish() {
  for (const Victim& v : victims_)
    throw_free(Throw::double_late, v.p, kind_bit(ErrorKind::double_free));
  victims_.clear();
  if (leader_) pair_.phase.store(-1, std::memory_order_release);  // no more rounds
  drop_anchors();
  for (void* p : shared_) valid_free(p);
  shared_.clear();
}

void* BadFreer::valid_alloc(std::size_t size) {
  void* p = heap_.allocate(size);
  if (p == nullptr) {
    run_.fail(fmt::format("allocate({}) failed", size));
    return nullptr;
  }
  tally_.allocs++;
  tally_.bytes += size;
  remember(p);
  return p;
}

void BadFreer::valid_free(void* p) {
  heap_.free(p);
  tally_.frees++;
}

void BadFreer::remember(void* p) {
  ring_[ring_next_++ % ring_.size()] = reinterpret_cast<std::uintptr_t>(p);
}

bool BadFreer::throw_free(Throw what, void* p, std::uint32_t allowed) {
  expecting = true;
  reported_kind = -1;
  heap_.free(p);
  expecting = false;
  counts_.thrown[static_cast<unsigned>(what)].fetch_add(1, std::memory_order_relaxed);
  if (reported_kind < 0) {
    run_.fail(fmt::format("bad free ({}) of {} was accepted",
                          throw_names[static_cast<unsigned>(what)], p));
    return false;
  }
  counts_.reported[static_cast<unsigned>(reported_kind)].fetch_add(1, std::memory_order_relaxed);
  if ((allowed & (1u << static_cast<unsigned>(reported_kind))) == 0)
    run_.fail(fmt::format("bad free ({}) of {}: unexpected report: {}",
                          throw_names[static_cast<unsigned>(what)], p, reported_message));
  return true;
}

void BadFreer::misaligned() {
  const std::size_t n = std::min<std::size_t>(ring_next_, ring_.size());
  if (n == 0) return;
  std::uintptr_t a = ring_[rng_.below(n)];
  const bool wild = rng_.chance(1, 2);
  if (wild)
    a = (a & ~std::uintptr_t{page_size - 1}) + rng_.below(1024) * page_size - (512 * page_size);
  a += 1 + rng_.below(7);
  // Wild ones may land outside this heap (an arena can appear there meanwhile): either way.
  const std::uint32_t outside = kind_bit(ErrorKind::foreign_free) | kind_bit(ErrorKind::misuse);
  throw_free(wild ? Throw::wild : Throw::misaligned, reinterpret_cast<void*>(a),
             wild ? any_bad_free | outside : any_bad_free);
}

void BadFreer::shared_churn() {
  if (shared_.size() > 48 || (rng_.chance(1, 2) && !shared_.empty())) {
    const std::size_t i = rng_.below(shared_.size());
    valid_free(shared_[i]);
    shared_[i] = shared_.back();
    shared_.pop_back();
    return;
  }
  const std::size_t size =
      rng_.chance(1, 16)
          ? static_cast<std::size_t>(rng_.between(max_small_size + 1, run_.config().max_large))
          : shared_sizes[rng_.below(shared_sizes.size())] - rng_.below(8);
  if (void* p = valid_alloc(size)) shared_.push_back(p);
}

void* BadFreer::anchored_object() {
  void* x = valid_alloc(private_size_);
  if (x == nullptr) return nullptr;
  const std::uintptr_t span = testing::span_start(heap_, x);
  for (int k = 0; k < 3; k++) {
    void* a = valid_alloc(private_size_);
    if (a == nullptr) break;
    anchors_.push_back(a);
    if (testing::span_start(heap_, a) == span) return x;
  }
  valid_free(x);
  return nullptr;
}

void BadFreer::private_step() {
  if (!victims_.empty()) {
    // A second free once a cycle has passed (or sooner, at random): pending, being swept or
    // reclaimed, it is a double free; nobody can have reused the slot.
    const Victim v = victims_.back();
    if (heap_.stats().cycles > v.cycle || rng_.chance(1, 8)) {
      victims_.pop_back();
      throw_free(Throw::double_late, v.p, kind_bit(ErrorKind::double_free));
    } else {
      misaligned();
    }
    return;
  }
  if (leader_ && rng_.chance(1, 3)) {
    racing_round();
    return;
  }
  void* x = anchored_object();
  if (x == nullptr) return;
  if (rng_.chance(1, 2)) {
    // A slot of the anchored span that holds no object (only this thread allocates there).
    auto* q = static_cast<char*>(x) + private_size_ * (1 + rng_.below(4));
    const PointerInfo info = heap_.find_object(q);
    if (info.kind == PointerKind::free_slot &&
        testing::span_start(heap_, q) == testing::span_start(heap_, x))
      throw_free(Throw::free_slot, q,
                 kind_bit(ErrorKind::invalid_free) | kind_bit(ErrorKind::double_free));
  }
  valid_free(x);
  if (rng_.chance(1, 2)) throw_free(Throw::double_now, x, kind_bit(ErrorKind::double_free));
  victims_.push_back(Victim{x, heap_.stats().cycles});
}

void BadFreer::racing_round() {
  void* x = anchored_object();
  if (x == nullptr) return;
  pair_.object.store(x, std::memory_order_relaxed);
  pair_.phase.store(Pair::offered, std::memory_order_release);
  int seen = Pair::offered;
  while ((seen = pair_.phase.load(std::memory_order_acquire)) == Pair::offered) {
    if (run_.stopping()) {
      int expected = Pair::offered;
      if (pair_.phase.compare_exchange_strong(expected, Pair::idle)) {
        valid_free(x);
        return;
      }
    }
    std::this_thread::yield();
  }
  pair_.phase.store(Pair::go, std::memory_order_release);
  const bool rejected = race_free(x);
  while (pair_.phase.load(std::memory_order_acquire) != Pair::done) std::this_thread::yield();
  const bool partner_accepted = pair_.partner_accepted.load(std::memory_order_relaxed);
  if (rejected == partner_accepted) {
    (partner_accepted ? counts_.racing_won_by_partner : counts_.racing_won_by_leader)
        .fetch_add(1, std::memory_order_relaxed);
  } else if (partner_accepted) {
    // Both returned: the merge must report it (checked at the end); one of them freed nothing.
    racing_both_returned.fetch_add(1, std::memory_order_relaxed);
    tally_.frees--;
  } else {
    run_.fail(fmt::format("two threads freed {} at once: {} succeeded", x, "neither"));
  }
  pair_.phase.store(Pair::idle, std::memory_order_release);
  victims_.push_back(Victim{x, heap_.stats().cycles});  // and a third free, later
}

void BadFreer::partner_round() {
  int expected = Pair::offered;
  if (!pair_.phase.compare_exchange_strong(expected, Pair::ready, std::memory_order_acq_rel))
    return;
  while (pair_.phase.load(std::memory_order_acquire) != Pair::go) std::this_thread::yield();
  const bool rejected = race_free(pair_.object.load(std::memory_order_relaxed));
  pair_.partner_accepted.store(!rejected, std::memory_order_relaxed);
  pair_.phase.store(Pair::done, std::memory_order_release);
}

bool BadFreer::race_free(void* x) {
  expecting = true;
  reported_kind = -1;
  heap_.free(x);
  expecting = false;
  if (reported_kind < 0) {
    tally_.frees++;
    return false;
  }
  counts_.thrown[static_cast<unsigned>(Throw::double_racing)].fetch_add(1,
                                                                        std::memory_order_relaxed);
  counts_.reported[static_cast<unsigned>(reported_kind)].fetch_add(1, std::memory_order_relaxed);
  if (reported_kind != static_cast<int>(ErrorKind::double_free))
    run_.fail(fmt::format("racing double free of {}: unexpected report: {}", x, reported_message));
  return true;
}

void BadFreer::drop_anchors() {
  for (void* a : anchors_) valid_free(a);
  anchors_.clear();
}

}  // namespace spanheap::stress::bad_free_driver
