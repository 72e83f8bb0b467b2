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
// span so that the span is never emptied and its pages never recycled meanwhile. The bad-free
// threads (BadFreer) are in bad_free/bad_freer.cpp.
#include "bad_free/bad_freer.hpp"
#include "common/harness.hpp"
#include "common/workers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace spanheap;
using namespace spanheap::stress;
using namespace spanheap::stress::bad_free_driver;

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

// The driver's premise: no mutator size shares a class with a bad-free thread's private size.
bool classes_are_disjoint() {
  for (std::size_t p : private_sizes)
    for (std::size_t s : shared_sizes)
      for (std::size_t d = 0; d < 8; d++)
        if (testing::size_to_class(s - d, 16) == testing::size_to_class(p, 16)) return false;
  return true;
}

// Reports a bad free expects stay on the freeing thread (BadFreer reads them there); a merge's
// report of a racing double free is counted; anything else goes to `unexpected`.
ErrorHandler expected_reports_handler(ErrorHandler unexpected) {
  return [unexpected](const ErrorReport& r) {
    if (r.kind == ErrorKind::double_free &&
        r.message.find(raced_report_text) != std::string::npos) {
      raced_reports.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!expecting) return unexpected(r);
    reported_kind = static_cast<int>(r.kind);
    reported_message = r.message;
  };
}

// A mutator: batches of objects of the shared sizes (or large ones), most of each freed at once so
// that spans are emptied and their pages recycled under the bad frees, some handed to others.
void mutator_thread(Run& run, Heap& heap, Slots& slots, std::uint64_t stream, const MutatorMix& mix,
                    std::atomic<std::uint64_t>& leaked, const StartGun& gun, SharedTally& tally) {
  const Config& cfg = run.config();
  Mutator m(run, heap, &slots, stream, mix, leaked);
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
}

// The summary's lines for the bad frees: thrown by kind, reported by kind, racing rounds.
std::vector<std::string> summary_lines(const Counts& counts) {
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
  return extra;
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
  opts.error_handler = expected_reports_handler(unexpected);
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
    threads.emplace_back(
        [&, i] { mutator_thread(run, heap, slots, 1000 + i, mix, leaked, gun, tally); });
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

  return run.finish(heap, tally, pauses, leaked.load(), summary_lines(counts));
}
