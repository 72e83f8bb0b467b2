// Template part of content.hpp.
#pragma once

#include <fmt/format.h>

namespace spanheap::stress {

template <typename AllocFn>
Obj make_object(Heap& heap, Rng& rng, std::size_t size, std::size_t align, AllocFn&& alloc,
                std::string* why) {
  Obj o;
  o.size = size;
  o.align = align;
  o.p = alloc(size, align);
  if (o.p == nullptr) {
    *why = fmt::format("allocate({}, {}) returned nullptr", size, align);
    return Obj{};
  }
  if (reinterpret_cast<std::uintptr_t>(o.p) % align != 0) {
    *why = fmt::format("allocate({}, {}) returned {} which is not aligned", size, align, o.p);
    return o;
  }
  std::size_t usable = heap.usable_size(o.p);
  if (usable == 0 || usable < size) {
    *why =
        fmt::format("allocate({}, {}) returned {} with usable_size {}", size, align, o.p, usable);
    return o;
  }
  o.key = make_key(rng, o.p);
  fill(o);
  why->clear();
  return o;
}

}  // namespace spanheap::stress
