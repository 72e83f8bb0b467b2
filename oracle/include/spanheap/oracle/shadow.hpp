// shadow: the shadow object model and its accounting — every live object (address, size, usable
// size, content seed, owner), every freed object until the heap reclaims it, and the two rules
// the model exists for: no slot is handed out twice, no live object is lost
// (docs/design.md "The oracle library"). When a freed slot may be handed out again is decided in
// one place, ReusePolicy, so a new reuse mode changes one function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace spanheap::oracle {

struct LiveObject {
  std::uint64_t id;  // allocation ordinal, "#id" in traces
  std::byte* p;
  std::size_t size;
  std::size_t align;
  std::size_t usable;
  std::uint64_t seed;  // content pattern seed (content.hpp)
  unsigned owner;      // the P (or driver) that allocated it
};

struct FreedObject {
  std::uint64_t id;
  std::byte* p;
  std::size_t size;
  std::size_t usable;
  std::uint64_t freed_in_cycle;  // Stats::cycles when it was freed
};

// When the heap may hand a freed slot out again (DESIGN §4). Today the only mode is reuse by
// sweep: a slot freed in cycle c is reclaimed by the first sweep of its span after the next
// cycle begins, so nothing freed in the current cycle may be reused, and once "sweep done" holds
// everything freed before it has been reclaimed.
struct ReusePolicy {
  // The slot of `f` may already have been reclaimed (and handed out again) at cycle `now`.
  static bool may_reuse(const FreedObject& f, std::uint64_t now) noexcept {
    return f.freed_in_cycle < now;
  }
  // The slot of `f` must have been reclaimed at cycle `now` (when every span is swept).
  static bool must_be_reclaimed(const FreedObject& f, std::uint64_t now, bool sweep_done) noexcept {
    return sweep_done && may_reuse(f, now);
  }
};

class ShadowHeap {
 public:
  // No reallocation while a program of `ops` operations runs (at most one object per operation).
  void reserve(std::size_t ops);

  const std::vector<LiveObject>& live() const { return live_; }
  std::vector<LiveObject>& live() { return live_; }
  const std::vector<FreedObject>& pending() const { return pending_; }
  const std::vector<FreedObject>& reclaimed() const { return reclaimed_; }

  // The live object overlapping [p, p + n), if any.
  const LiveObject* live_overlap(std::uintptr_t p, std::size_t n) const;

  // A new object at [p, p + usable): the live object it overlaps (a slot handed out twice), else
  // nullptr, in which case every pending object it overlaps must be reusable at cycle `now`
  // (*too_early names the first that is not) and those are moved to reclaimed().
  struct Admission {
    const LiveObject* overlaps_live = nullptr;
    const FreedObject* reused_too_early = nullptr;
  };
  Admission check_new(std::uintptr_t p, std::size_t usable, std::uint64_t now);
  // Records an object that check_new admitted.
  void add_live(const LiveObject& o);
  // The live object at `index` was freed in cycle `now`: it becomes pending.
  FreedObject& free_live(std::size_t index, std::uint64_t now);
  // Every live object was freed in cycle `now`.
  void free_all(std::uint64_t now);
  // Moves the pending objects for which `reclaimed(f)` holds to reclaimed(); returns the first one
  // that ReusePolicy says is reclaimed too early at cycle `now` (left pending), or nullptr.
  template <class Pred>
  const FreedObject* sweep_pending(std::uint64_t now, Pred&& reclaimed);

 private:
  void remember_reclaimed(const FreedObject& f);
  // Live objects' [begin, end) by begin address: a sorted vector, no allocation per object.
  struct Range {
    std::uintptr_t begin;
    std::uintptr_t end;
    std::uint64_t id;
  };
  std::vector<LiveObject> live_;
  std::vector<Range> ranges_;
  std::vector<FreedObject> pending_;
  std::vector<FreedObject> reclaimed_;  // the most recent, for double frees after reuse
};

template <class Pred>
const FreedObject* ShadowHeap::sweep_pending(std::uint64_t now, Pred&& reclaimed) {
  std::size_t keep = 0;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const FreedObject& f = pending_[i];
    if (!reclaimed(f)) {
      pending_[keep++] = f;
      continue;
    }
    if (!ReusePolicy::may_reuse(f, now)) {
      // Leave it (and everything after it) pending; the caller reports it.
      std::move(pending_.begin() + static_cast<std::ptrdiff_t>(i), pending_.end(),
                pending_.begin() + static_cast<std::ptrdiff_t>(keep));
      pending_.resize(keep + (pending_.size() - i));
      return &pending_[keep];
    }
    remember_reclaimed(f);
  }
  pending_.resize(keep);
  return nullptr;
}

}  // namespace spanheap::oracle
