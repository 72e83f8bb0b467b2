// home_arena: the arena the free fast path looks in first, and the copies of its base and page
// table it reads beside it (HomeArena, in the Heap object; INV-H1): their view, its check, their
// publication by the heap's first allocation.
#pragma once

#include <cstdint>
#include <vector>

#include "check.hpp"
#include "heap_state.hpp"

namespace spanheap::detail {

// What the free fast path reads of the home arena: the arena, then its copies (INV-H1).
struct HomeArenaView {
  const Arena* arena;
  std::uintptr_t base;
  std::atomic<Span*>* spans;
};

// The acquire load comes first: the copies written before the arena's release store are then
// the ones read. Their loads do not depend on its value, so they do not wait for it.
[[gnu::always_inline]] inline HomeArenaView home_arena_view(const HomeArena& home) noexcept {
  HomeArenaView v;
  v.arena = home.arena.load(std::memory_order_acquire);
  v.base = home.base.load(std::memory_order_relaxed);
  v.spans = home.spans.load(std::memory_order_relaxed);
  return v;
}

// INV-H1: a view that names an arena has that arena's copies (no_arena's are never used).
inline bool home_arena_view_consistent(const HomeArenaView& v) noexcept {
  return v.arena == &no_arena || (v.base == v.arena->base && v.spans == v.arena->spans);
}

// The fast path's debug-tier check of the view it read (INV-H1).
[[gnu::always_inline]] inline void check_home_arena_view([[maybe_unused]] HeapState& heap,
                                                         [[maybe_unused]] const HomeArenaView& v) {
#ifndef NDEBUG
  SPANHEAP_DCHECK(&heap, home_arena_view_consistent(v),
                  "the free fast path read copies of another arena than its home's (INV-H1)");
#endif
}

// The first allocation names its span's arena as the home (HeapState::home) with its copies,
// written first. Once a heap: the call that wins home_claimed publishes, the others return.
void publish_home_arena(HeapState& heap, const Arena& arena);

// INV-H1 with the world stopped: the home arena is no arena or one of this heap's, with its own
// copies; and INV-H2: the Heap's copy of the bound key is the state's, and every P names this
// heap (the bound fast paths' slow exits reach it through their P) (validate_census).
void home_arena_violations(HeapState& heap, std::vector<Violation>& out);

}  // namespace spanheap::detail
