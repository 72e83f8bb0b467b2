// bad_free_stress's bad-free threads (BadFreer): what each may throw, the reports it expects, and
// the pairs that free one object at the same instant. The driver's premise is in
// bad_free_stress.cpp; docs/stress.md describes the driver.
#pragma once

#include "common/harness.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spanheap::stress::bad_free_driver {

// Mutators allocate these (minus up to 7 bytes); bad-free threads own one private size each.
inline constexpr std::array<std::size_t, 6> shared_sizes = {24, 48, 128, 512, 2048, 8192};
inline constexpr std::array<std::size_t, 8> private_sizes = {80, 112, 160, 224, 320, 448, 640, 896};

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
inline constexpr const char* throw_names[] = {"foreign",     "wrong_heap",   "misaligned",
                                              "wild",        "free_slot",    "double_now",
                                              "double_late", "double_racing"};
inline constexpr unsigned throw_count = 8;

constexpr std::uint32_t kind_bit(ErrorKind k) { return 1u << static_cast<unsigned>(k); }
inline constexpr std::uint32_t any_bad_free = kind_bit(ErrorKind::interior_free) |
                                              kind_bit(ErrorKind::invalid_free) |
                                              kind_bit(ErrorKind::double_free);

// The report a bad free produced on this thread (the handler runs on the freeing thread).
extern thread_local bool expecting;
// Racing double frees where both frees returned: allowed when one of them was the free of the P
// caching the span (it writes its bits without a lock); the owner's merge then reports the slot
// once, from whichever thread merges (docs/design.md, "Owner frees without a locked instruction").
extern std::atomic<std::uint64_t> racing_both_returned;
extern std::atomic<std::uint64_t> raced_reports;
inline constexpr std::string_view raced_report_text = "freed twice at once";
extern thread_local int reported_kind;
extern thread_local std::string reported_message;

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

// One bad-free thread: `index` picks its private size, and the even one of each Pair leads it.
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

  // One move: a bad free of some kind, churn of valid objects, or a step in a private span.
  void step();

  // Ends the run's share of this thread: every second free issued, everything valid freed.
  void finish();

  Tally& tally() { return tally_; }

 private:
  struct Victim {
    void* p;
    std::uint64_t cycle;
  };

  void* valid_alloc(std::size_t size);
  void valid_free(void* p);
  void remember(void* p);

  // Frees `p`, which must be rejected with a kind in `allowed`; returns true if it was rejected.
  bool throw_free(Throw what, void* p, std::uint32_t allowed);

  // 1-7 bytes past an address this thread was handed, or (wild) past a page up to 4 MiB either
  // side of one: there, the spans of the mutators, being emptied, freed and recycled, or free
  // pages, the uncommitted rest of an arena, another arena or no arena at all.
  void misaligned();

  // Valid objects of the mutators' classes and large ones: their addresses feed misaligned().
  void shared_churn();

  // A private object with a live anchor in its span, or nullptr (then nothing was kept).
  void* anchored_object();

  void private_step();

  // Leader: offers an anchored object to the partner; both free it at "go".
  void racing_round();

  // Partner: joins a round the leader offered.
  void partner_round();

  // One side of a racing double free: true if this side was rejected (as double_free).
  bool race_free(void* x);

  void drop_anchors();

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

}  // namespace spanheap::stress::bad_free_driver
