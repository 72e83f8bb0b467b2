// home_arena: the free fast path's home arena, published once (home_arena.hpp).
#include "home_arena.hpp"

#include <fmt/format.h>

namespace spanheap::detail {

void publish_home_arena(HeapState& heap, const Arena& arena) {
  if (heap.home_claimed.exchange(true, std::memory_order_relaxed)) return;
  heap.home->base.store(arena.base, std::memory_order_relaxed);
  heap.home->spans.store(arena.spans, std::memory_order_relaxed);
  protocol_point(heap, ProtocolPoint::home_arena_copied);
  heap.home->arena.store(&arena, std::memory_order_release);
  protocol_point(heap, ProtocolPoint::home_arena_published);
}

void home_arena_violations(HeapState& heap, std::vector<Violation>& out) {
  const HomeArenaView home = home_arena_view(*heap.home);
  if (home.arena != &no_arena && home.arena->owner != &heap) {
    out.push_back({"INV-H1", fmt::format("the home arena {} is not one of this heap's",
                                         static_cast<const void*>(home.arena))});
  } else if (!home_arena_view_consistent(home)) {
    out.push_back(
        {"INV-H1", fmt::format("home arena {} has base {:#x} and page table {} but the copies "
                               "read {:#x} and {}",
                               static_cast<const void*>(home.arena), home.arena->base,
                               static_cast<const void*>(home.arena->spans), home.base,
                               static_cast<const void*>(home.spans))});
  }
  if (heap.bound_key_copy != nullptr && *heap.bound_key_copy != heap.bound_key)
    out.push_back({"INV-H2", fmt::format("the Heap's copy of the bound key reads {:#x}, the "
                                         "state's {:#x}",
                                         *heap.bound_key_copy, heap.bound_key)});
  for (unsigned i = 0; i < heap.nslots; i++)
    if (heap.procs[i].heap != &heap)
      out.push_back({"INV-H2", fmt::format("P {} names heap {} as its own", i,
                                           static_cast<const void*>(heap.procs[i].heap))});
}

}  // namespace spanheap::detail
