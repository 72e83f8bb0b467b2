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

ShadowHeap::Admission ShadowHeap::check_new(std::uintptr_t p, std::size_t usable,
                                            std::uint64_t now) {
  Admission a;
  a.overlaps_live = live_overlap(p, usable);
  if (a.overlaps_live != nullptr) return a;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const FreedObject& f = pending_[i];
    if (addr(f.p) >= p + extent(usable) || p >= addr(f.p) + extent(f.usable)) continue;
    if (!ReusePolicy::may_reuse(f, now)) {
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
}

FreedObject& ShadowHeap::free_live(std::size_t index, std::uint64_t now) {
  const LiveObject o = live_[index];
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), addr(o.p),
                             [](const Range& x, std::uintptr_t a) { return x.begin < a; });
  if (it != ranges_.end() && it->begin == addr(o.p)) ranges_.erase(it);
  live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(index));
  pending_.push_back(FreedObject{o.id, o.p, o.size, o.usable, now});
  return pending_.back();
}

void ShadowHeap::free_all(std::uint64_t now) {
  for (const LiveObject& o : live_)
    pending_.push_back(FreedObject{o.id, o.p, o.size, o.usable, now});
  live_.clear();
  ranges_.clear();
}

void ShadowHeap::remember_reclaimed(const FreedObject& f) {
  reclaimed_.push_back(f);
  if (reclaimed_.size() > remembered_reclaims) reclaimed_.erase(reclaimed_.begin());
}

}  // namespace spanheap::oracle
