// shadow: see shadow.hpp.
#include <spanheap/oracle/shadow.hpp>

#include <algorithm>

namespace spanheap::oracle {
namespace {

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// The bytes an object occupies for the overlap rules: a zero-size object still owns its slot.
std::size_t extent(std::size_t usable) { return std::max<std::size_t>(usable, 1); }

// How many reclaimed objects to remember (a double free of one of them must still be named).
constexpr std::size_t remembered_reclaims = 64;

}  // namespace

void ShadowHeap::reserve(std::size_t ops) {
  live_.reserve(ops);
  ranges_.reserve(ops);
  pending_.reserve(ops);
  lives_.reserve(ops);
  reclaimed_.reserve(remembered_reclaims + 1);
}

const LiveObject* ShadowHeap::live_overlap(std::uintptr_t p, std::size_t n) const {
  // The first range starting after our last byte; the one before it is the only candidate.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), p + n - 1,
                             [](std::uintptr_t a, const Range& r) { return a < r.begin; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (it->end <= p) return nullptr;
  for (const LiveObject& o : live_) {
    if (o.id == it->id) return &o;
  }
  return nullptr;
}

const FreedObject* ShadowHeap::pending_at(const void* p) const {
  for (const FreedObject& f : pending_) {
    if (f.p == p) return &f;
  }
  return nullptr;
}

ShadowHeap::Admission ShadowHeap::check_new(std::uintptr_t p, std::size_t usable,
                                            std::uint64_t now) {
  Admission a;
  a.overlaps_live = live_overlap(p, usable);
  if (a.overlaps_live != nullptr) return a;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const FreedObject& f = pending_[i];
    if (addr(f.p) >= p + extent(usable) || p >= addr(f.p) + extent(f.usable)) continue;
    if (!policy_.may_reuse(f, now)) {
      a.reused_too_early = &f;
      return a;
    }
    remember_reclaimed(f);
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    --i;
  }
  return a;
}

void ShadowHeap::add_live(const LiveObject& o) {
  const Range r{addr(o.p), addr(o.p) + extent(o.usable), o.id};
  ranges_.insert(std::upper_bound(ranges_.begin(), ranges_.end(), r.begin,
                                  [](std::uintptr_t a, const Range& x) { return a < x.begin; }),
                 r);
  live_.push_back(o);
  if (o.life < lives_.size()) ++lives_[o.life].live;
}

FreedObject& ShadowHeap::free_live(std::size_t index, std::uint64_t now) {
  const LiveObject o = live_[index];
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), addr(o.p),
                             [](const Range& x, std::uintptr_t a) { return x.begin < a; });
  if (it != ranges_.end() && it->begin == addr(o.p)) ranges_.erase(it);
  live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(index));
  if (o.life < lives_.size()) --lives_[o.life].live;
  const FreedObject f{o.id, o.p, o.size, o.usable, now, o.large, o.life};
  if (policy_.reclaimed_at_free(o.large)) {
    remember_reclaimed(f);
    return reclaimed_.back();
  }
  pending_.push_back(f);
  return pending_.back();
}

void ShadowHeap::free_all(std::uint64_t now) {
  for (std::size_t i = live_.size(); i-- > 0;) free_live(i, now);
}

std::uint32_t ShadowHeap::join_span_life(std::uintptr_t base, unsigned span_class, bool released) {
  for (std::size_t i = lives_.size(); i-- > 0;) {
    SpanLife& l = lives_[i];
    if (l.base != base || l.maybe_released) continue;
    if (l.span_class == span_class && !(released && l.live == 0))
      return static_cast<std::uint32_t>(i);
    // Another span at this base (other class), or possibly a new one: the old life is over or
    // indistinguishable from the new, so its reclaimed objects lose their certainty.
    l.maybe_released = true;
  }
  lives_.push_back(SpanLife{base, span_class, 0, false});
  return static_cast<std::uint32_t>(lives_.size() - 1);
}

void ShadowHeap::spans_released() {
  for (SpanLife& l : lives_) {
    if (l.live == 0) l.maybe_released = true;
  }
}

bool ShadowHeap::span_life_intact(const FreedObject& f) const {
  return f.life < lives_.size() && !lives_[f.life].maybe_released;
}

void ShadowHeap::remember_reclaimed(const FreedObject& f) {
  reclaimed_.push_back(f);
  if (reclaimed_.size() > remembered_reclaims) reclaimed_.erase(reclaimed_.begin());
}

}  // namespace spanheap::oracle
