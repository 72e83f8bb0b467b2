// bad_free_stress: threads throw every kind of bad free at a heap whose spans are being swept,
// emptied, freed and recycled, while mutators allocate, free across threads and check content,
// collectors force cycles, sweepers sweep and a verifier checks the heap. Each bad free must be
// reported with a kind of the set its situation allows and must never free anything; two threads
// freeing one object at the same instant must see exactly one success and one double_free. At the
// end the heap's counts of allocations and frees equal the driver's own (a bad free that was
// accepted shows there). See docs/stress.md and docs/design.md §"Bad input".
//
// Which bad frees are safe to throw concurrently (the guarantee of docs/design.md): a pointer that
// can never be an object start (misaligned: objects are 8-byte aligned), a foreign or another
// heap's pointer, and a second free of an object whose slot nobody can have reused. For the last,
// each bad-free thread owns a size class no other thread allocates from, allocates nothing in it
// while one of its objects awaits its second free, and keeps a live anchor object in the same
// span so that the span is never emptied and its pages never recycled meanwhile.
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace spanheap;
using namespace spanheap::stress;

namespace {

Defaults defaults() {
  Defaults d;
  d.normal.threads = 4;  // mutators; as many bad-free threads (pairs), at most 8
  d.normal.seconds = 10;
  d.normal.sweepers = 2;
  d.normal.sweep_threads = 1;
  d.normal.collectors = 2;
  d.normal.procs = 3;
  d.normal.verify_every_ms = 150;
  d.normal.stw_every_us = 500;
  d.smoke = d.normal;
  d.smoke.threads = 2;
  d.smoke.seconds = under_sanitizer() ? 3 : 2;
  d.smoke.max_large = std::size_t{256} << 10;
  return d;
}

// Mutators allocate these (minus up to 7 bytes); bad-free threads own one private size each.
constexpr std::array<std::size_t, 6> shared_sizes = {24, 48, 128, 512, 2048, 8192};
constexpr std::array<std::size_t, 8> private_sizes = {80, 112, 160, 224, 320, 448, 640, 896};

enum class Throw : unsigned {
  foreign,        // a stack address: foreign_free
  wrong_heap,     // another heap's object: misuse
  misaligned,     // 1..7 bytes past an address this heap handed out: never an object start
  wild,           // the same, past a page near one: anyone's spans, free pages, other memory
  free_slot,      // a slot of an anchored private span that holds no object
  double_now,     // a second free right after the first
  double_late,    // a second free cycles later, racing the sweep that reclaims the slot
  double_racing,  // two threads free one object at the same instant: exactly one succeeds
};
constexpr const char* throw_names[] = {"foreign",   "wrong_heap", "misaligned",  "wild",
                                       "free_slot", "double_now", "double_late", "double_racing"};
constexpr unsigned throw_count = 8;

constexpr std::uint32_t kind_bit(ErrorKind k) { return 1u << static_cast<unsigned>(k); }
constexpr std::uint32_t any_bad_free = kind_bit(ErrorKind::interior_free) |
                                       kind_bit(ErrorKind::invalid_free) |
                                       kind_bit(ErrorKind::double_free);

// The report a bad free produced on this thread (the handler runs on the freeing thread).
thread_local bool expecting = false;
// Racing double frees where both frees returned: allowed when one of them was the free of the P
// caching the span (it writes its bits without a lock); the owner's merge then reports the slot
// once, from whichever thread merges (docs/design.md, "Owner frees without a locked instruction").
std::atomic<std::uint64_t> racing_both_returned{0};
std::atomic<std::uint64_t> raced_reports{0};
constexpr std::string_view raced_report_text = "freed twice at once";
thread_local int reported_kind = -1;
thread_local std::string reported_message;

struct Counts {
  std::array<std::atomic<std::uint64_t>, throw_count> thrown{};
  std::array<std::atomic<std::uint64_t>, error_kind_count> reported{};
  std::atomic<std::uint64_t> racing_won_by_leader{0}, racing_won_by_partner{0};
};

// One racing double free at a time per pair: the leader allocates, both free at "go".
struct Pair {
  enum Phase : int { idle = 0, offered = 1, ready = 2, go = 3, done = 4 };
  std::atomic<int> phase{idle};
  std::atomic<void*> object{nullptr};
  std::atomic<bool> partner_accepted{false};
};

class BadFreer {
 public:
  BadFreer(Run& run, Heap& heap, void* other_object, Counts& counts, unsigned index, Pair& pair)
      : run_(run),
        heap_(heap),
        other_object_(other_object),
        counts_(counts),
        rng_(run.config().seed, 5000 + index),
        private_size_(private_sizes[index]),
        leader_(index % 2 == 0),
        pair_(pair) {}

  void step() {
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

  // Ends the run's share of this thread: every second free issued, everything valid freed.
  void finish() {
    for (const Victim& v : victims_)
      throw_free(Throw::double_late, v.p, kind_bit(ErrorKind::double_free));
    victims_.clear();
    if (leader_) pair_.phase.store(-1, std::memory_order_release);  // no more rounds
    drop_anchors();
    for (void* p : shared_) valid_free(p);
    shared_.clear();
  }

  Tally& tally() { return tally_; }

 private:
  struct Victim {
    void* p;
    std::uint64_t cycle;
  };

  void* valid_alloc(std::size_t size) {
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
  void valid_free(void* p) {
    heap_.free(p);
    tally_.frees++;
  }
  void remember(void* p) {
    ring_[ring_next_++ % ring_.size()] = reinterpret_cast<std::uintptr_t>(p);
  }

  // Frees `p`, which must be rejected with a kind in `allowed`; returns true if it was rejected.
  bool throw_free(Throw what, void* p, std::uint32_t allowed) {
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

  // 1-7 bytes past an address this thread was handed, or (wild) past a page up to 4 MiB either
  // side of one: there, the spans of the mutators, being emptied, freed and recycled, or free
  // pages, the uncommitted rest of an arena, another arena or no arena at all.
  void misaligned() {
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

  // Valid objects of the mutators' classes and large ones: their addresses feed misaligned().
  void shared_churn() {
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

  // A private object with a live anchor in its span, or nullptr (then nothing was kept).
  void* anchored_object() {
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

  void private_step() {
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

  // Leader: offers an anchored object to the partner; both free it at "go".
  void racing_round() {
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

  // Partner: joins a round the leader offered.
  void partner_round() {
    int expected = Pair::offered;
    if (!pair_.phase.compare_exchange_strong(expected, Pair::ready, std::memory_order_acq_rel))
      return;
    while (pair_.phase.load(std::memory_order_acquire) != Pair::go) std::this_thread::yield();
    const bool rejected = race_free(pair_.object.load(std::memory_order_relaxed));
    pair_.partner_accepted.store(!rejected, std::memory_order_relaxed);
    pair_.phase.store(Pair::done, std::memory_order_release);
  }

  // One side of a racing double free: true if this side was rejected (as double_free).
  bool race_free(void* x) {
    expecting = true;
    reported_kind = -1;
    heap_.free(x);
    expecting = false;
    if (reported_kind < 0) {
      tally_.frees++;
      return false;
    }
    counts_.thrown[static_cast<unsigned>(Throw::double_racing)].fetch_add(
        1, std::memory_order_relaxed);
    counts_.reported[static_cast<unsigned>(reported_kind)].fetch_add(1, std::memory_order_relaxed);
    if (reported_kind != static_cast<int>(ErrorKind::double_free))
      run_.fail(
          fmt::format("racing double free of {}: unexpected report: {}", x, reported_message));
    return true;
  }

  void drop_anchors() {
    for (void* a : anchors_) valid_free(a);
    anchors_.clear();
  }

  Run& run_;
  Heap& heap_;
  void* other_object_;
  Counts& counts_;
  Rng rng_;
  std::size_t private_size_;
  bool leader_;
  Pair& pair_;
  Tally tally_;
  std::vector<void*> anchors_;
  std::vector<Victim> victims_;
  std::vector<void*> shared_;
  std::array<std::uintptr_t, 64> ring_{};
  std::size_t ring_next_ = 0;
};

// The driver's premise: no mutator size shares a class with a bad-free thread's private size.
bool classes_are_disjoint() {
  for (std::size_t p : private_sizes)
    for (std::size_t s : shared_sizes)
      for (std::size_t d = 0; d < 8; d++)
        if (testing::size_to_class(s - d, 16) == testing::size_to_class(p, 16)) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Run run("bad_free_stress", argc, argv, defaults());
  const Config& cfg = run.config();
  if (!classes_are_disjoint()) {
    run.fail("a private size shares a size class with the mutators' sizes");
    return 1;
  }
  Options opts = run.heap_options(3);
  opts.release_after_cycles = 1;
  opts.gc_percent = 25;
  // Expected reports stay on the freeing thread; anything else fails the run as usual.
  ErrorHandler unexpected = opts.error_handler;
  opts.error_handler = [unexpected](const ErrorReport& r) {
    if (r.kind == ErrorKind::double_free &&
        r.message.find(raced_report_text) != std::string::npos) {
      raced_reports.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!expecting) return unexpected(r);
    reported_kind = static_cast<int>(r.kind);
    reported_message = r.message;
  };
  Heap heap(opts);
  run.arm(heap);  // --yield-at-points
  Options other_opts;
  other_opts.procs = 1;
  other_opts.sweepers = 0;
  other_opts.error_handler = unexpected;
  Heap other(other_opts);
  void* other_object = other.allocate(64);

  const unsigned freers =
      std::min<unsigned>(2 * std::max(1u, cfg.threads / 2), private_sizes.size());
  Slots slots(2 * cfg.threads);
  StartGun gun;
  SharedTally tally;
  PauseLog pauses;
  Counts counts;
  std::atomic<std::uint64_t> leaked{0};
  std::vector<Pair> pairs(freers / 2);
  std::vector<std::thread> threads;

  MutatorMix mix;
  mix.max_held = cfg.smoke ? 1000 : 4000;
  for (unsigned i = 0; i < cfg.threads; ++i) {
    threads.emplace_back([&, i] {
      Mutator m(run, heap, &slots, 1000 + i, mix, leaked);
      gun.wait();
      while (!run.stopping()) {
        Rng& rng = m.rng();
        const bool large = rng.chance(1, 10) && cfg.max_large > max_small_size;
        const auto n = large ? rng.between(1, 6) : rng.between(16, 300);
        const std::size_t size = shared_sizes[rng.below(shared_sizes.size())];
        for (std::uint64_t k = 0; k < n && !run.stopping(); ++k) {
          const std::size_t s =
              large ? static_cast<std::size_t>(rng.between(max_small_size + 1, cfg.max_large))
                    : size - rng.below(8);
          if (!m.allocate_sized(s)) break;
        }
        // Free most of it: spans emptied and freed by the next sweep, pages recycled.
        for (std::size_t keep = m.held() / 8; m.held() > keep && !run.stopping();)
          if (!m.free_one()) break;
        for (int k = 0; k < 2 && !run.stopping(); ++k) m.transfer_one(slots);
        m.publish(tally);
      }
      m.free_all();
      m.publish(tally);
    });
  }
  for (unsigned i = 0; i < freers; ++i) {
    threads.emplace_back([&, i] {
      BadFreer f(run, heap, other_object, counts, i, pairs[i / 2]);
      gun.wait();
      for (unsigned k = 0; !run.stopping(); k++) {
        f.step();
        if (k % 64 == 0) tally.add(f.tally());
      }
      f.finish();
      tally.add(f.tally());
    });
  }
  for (unsigned s = 0; s < cfg.sweep_threads; ++s) {
    threads.emplace_back([&] {
      gun.wait();
      sweeper_loop(run, heap, tally);
    });
  }
  for (unsigned c = 0; c < cfg.collectors; ++c) {
    threads.emplace_back([&, c] {
      gun.wait();
      collector_loop(run, heap, 2000 + c, /*fast=*/c == 0, /*split=*/c % 2 == 1, pauses);
    });
  }
  threads.emplace_back([&] {
    gun.wait();
    verifier_loop(run, heap);
  });

  run.monitor(gun, heap, tally, pauses);
  for (auto& t : threads) t.join();
  Tally rest;
  slots.drain(run, heap, rest, leaked);
  tally.add(rest);
  other.free(other_object);
  testing::flush_all(heap);  // every owner merges: each racing pair that both returned is reported
  if (raced_reports.load() != racing_both_returned.load())
    run.fail(fmt::format("{} racing double frees both returned but the merges reported {}",
                         racing_both_returned.load(), raced_reports.load()));

  std::vector<std::string> extra;
  std::string thrown = "bad frees  ";
  for (unsigned t = 0; t < throw_count; t++)
    thrown += fmt::format(" {} {}", throw_names[t], counts.thrown[t].load());
  extra.push_back(thrown);
  std::string reported = "reports    ";
  for (unsigned k = 0; k < error_kind_count; k++)
    if (const auto n = counts.reported[k].load(); n != 0)
      reported += fmt::format(" {} {}", to_string(static_cast<ErrorKind>(k)), n);
  extra.push_back(reported);
  extra.push_back(
      fmt::format("racing     {} rounds: first free won by the leader {}, by the partner {}, "
                  "both returned and reported at the merge {}",
                  counts.racing_won_by_leader.load() + counts.racing_won_by_partner.load() +
                      racing_both_returned.load(),
                  counts.racing_won_by_leader.load(), counts.racing_won_by_partner.load(),
                  racing_both_returned.load()));
  return run.finish(heap, tally, pauses, leaked.load(), extra);
}
