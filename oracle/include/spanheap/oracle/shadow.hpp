// shadow: the shadow object model and its accounting — every live object (address, size, usable
// size, content seed, owner), every freed object until the heap reclaims it, and the two rules
// the model exists for: no slot is handed out twice, no live object is lost
// (docs/design.md "The oracle library"). When a freed slot may be handed out again is decided in
// one place, ReusePolicy, so a new reuse mode changes one struct.
#pragma once

#include <spanheap/spanheap.hpp>

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
  std::uint64_t seed;      // content pattern seed (content.hpp)
  unsigned owner;          // the P (or driver) that allocated it
  bool large = false;      // span class 0: its own span
  std::uint32_t life = 0;  // the span life it was allocated in (ShadowHeap::join_span_life)
};

struct FreedObject {
  std::uint64_t id;
  std::byte* p;
  std::size_t size;
  std::size_t usable;
  std::uint64_t freed_in_cycle;  // Stats::cycles when it was freed
  bool large = false;
  std::uint32_t life = 0;
};

// When the heap may hand a freed slot out again (DESIGN §4, docs/design.md "Reuse"), for the
// heap's Options::reuse. This is the one place a reuse mode is taught to the oracles.
//  - next_cycle (the quarantine): a slot freed in cycle c is reclaimed by the first sweep of its
//    span after the next cycle begins, so nothing freed in the current cycle may be reused.
//  - owner: a slot may come back at any time after its free — collected by the P caching its
//    span (T9a), by central handing the span to a cache (T9b) — and a large object's pages go
//    back at its free (T10). Which pending frees a collection takes depends on the heap's own
//    counters (a quarter of the span's slots pending), so the model does not predict the moment
//    of a small object's reclaim: it reads it (find_object) and only checks what must hold.
// Under both, once "sweep done" holds everything freed before the cycle has been reclaimed: a
// collection only ever reclaims earlier than the sweep would.
struct ReusePolicy {
  spanheap::ReusePolicy mode = spanheap::ReusePolicy::next_cycle;

  bool owner() const noexcept { return mode == spanheap::ReusePolicy::owner; }
  // The slot of `f` may already have been reclaimed (and handed out again) at cycle `now`.
  bool may_reuse(const FreedObject& f, std::uint64_t now) const noexcept {
    return owner() || f.freed_in_cycle < now;
  }
  // The slot of `f` must have been reclaimed at cycle `now` (when every span is swept).
  bool must_be_reclaimed(const FreedObject& f, std::uint64_t now, bool sweep_done) const noexcept {
    return sweep_done && f.freed_in_cycle < now;
  }
  // The free itself reclaims the object (T10: a large object's pages go back at once).
  bool reclaimed_at_free(bool large) const noexcept { return owner() && large; }
  // The heap may collect (T9) or free large spans at free() (T10) at all.
  bool collects() const noexcept { return owner(); }
};

class ShadowHeap {
 public:
  explicit ShadowHeap(ReusePolicy policy = {}) : policy_(policy) {}
  const ReusePolicy& policy() const { return policy_; }

  // No reallocation while a program of `ops` operations runs (at most one object per operation).
  void reserve(std::size_t ops);

  const std::vector<LiveObject>& live() const { return live_; }
  std::vector<LiveObject>& live() { return live_; }
  const std::vector<FreedObject>& pending() const { return pending_; }
  const std::vector<FreedObject>& reclaimed() const { return reclaimed_; }

  // The live object overlapping [p, p + n), if any.
  const LiveObject* live_overlap(std::uintptr_t p, std::size_t n) const;
  // The pending object starting at `p`, if any.
  const FreedObject* pending_at(const void* p) const;

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
  // The live object at `index` was freed in cycle `now`: it becomes pending (or reclaimed, when
  // the policy says the free reclaims it).
  FreedObject& free_live(std::size_t index, std::uint64_t now);
  // Every live object was freed in cycle `now`.
  void free_all(std::uint64_t now);
  // Moves the pending objects for which `reclaimed(f)` holds to reclaimed(); returns the first one
  // that ReusePolicy says is reclaimed too early at cycle `now` (left pending), or nullptr.
  template <class Pred>
  const FreedObject* sweep_pending(std::uint64_t now, Pred&& reclaimed);

  // Span lives. A double free of a reclaimed object's start is double_free while the span that
  // reclaimed it is still there (its reclaimed bit), and depends on the new span's own history
  // once the span went back to the page heap and new spans took its pages. The model sees no span
  // identity, so it tracks lives: each object joins the life of the span it was allocated in
  // (span base and class); a life whose span may have been released since is marked so. A span
  // holding a live object is never released, so a life becomes "maybe released" only when a
  // release happened (the driver counts page frees) while it held no live object.
  //
  // The life an object allocated at span `base` of class `span_class` joins; `released` says
  // that a span may have been released during the allocation (then a life holding no live
  // object is not joined: its span may be a new one at the same place).
  std::uint32_t join_span_life(std::uintptr_t base, unsigned span_class, bool released);
  // A release happened in the last step: every life holding no live object may be over.
  void spans_released();
  // The span that reclaimed `f` is certainly still there (it held a live object throughout).
  bool span_life_intact(const FreedObject& f) const;

 private:
  struct SpanLife {
    std::uintptr_t base;
    unsigned span_class;
    std::uint32_t live;  // live objects allocated in this life
    bool maybe_released;
  };
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
  std::vector<SpanLife> lives_;
  ReusePolicy policy_;
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
    if (!policy_.may_reuse(f, now)) {
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
