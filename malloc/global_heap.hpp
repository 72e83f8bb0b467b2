// global_heap: the one process-wide spanheap::Heap behind malloc and operator new, built lazily on
// the first call without recursing into itself, plus the two kinds of memory it does not own that
// the shim must still answer for. See docs/malloc.md.
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spanheap::shim {

enum class InitState : int { uninitialised, initialising, ready };

extern std::atomic<InitState> init_state;
extern Heap* the_heap;
// The heap once its build has finished (a release store after it), nullptr before: the allocation
// functions' common case is this one load and its test.
extern std::atomic<Heap*> ready_heap;

// The heap, built on first use. nullptr only for the thread that is building it (the heap's own
// start-up allocates: its state, its P array, its sweeper threads): that thread is served from the
// bootstrap arena instead. Other threads wait for the build to finish.
Heap* global_heap_slow();
inline Heap* global_heap() {
  if (Heap* h = ready_heap.load(std::memory_order_acquire)) [[likely]]
    return h;
  return global_heap_slow();
}

// Bootstrap arena: a fixed zero-filled region that serves the building thread. Its blocks are
// never reused (a free is a no-op); each carries its size in the 16 bytes in front of it.
inline constexpr std::size_t bootstrap_bytes = std::size_t{1} << 20;
extern unsigned char bootstrap[bootstrap_bytes];
void* bootstrap_alloc(std::size_t size, std::size_t align) noexcept;
std::size_t bootstrap_size(const void* p) noexcept;
// Inline, as the next test: every free asks both before it reaches the heap.
inline bool bootstrap_owns(const void* p) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(bootstrap) <
         bootstrap_bytes;
}

// The next allocator (normally glibc's), for pointers it handed out before the shim started: the
// brk heap as it was when the heap was built, which is where glibc's main arena lives when the shim
// is loaded after glibc's malloc has run (dlopen). The LD_PRELOAD and linked cases leave it empty.
// Written once, by the build, before ready_heap is published.
extern std::uintptr_t next_heap_begin;
extern std::uintptr_t next_heap_end;
inline bool next_allocator_owns(const void* p) noexcept {
  // One compare: a pointer below the range wraps past its size (an empty range owns nothing).
  return reinterpret_cast<std::uintptr_t>(p) - next_heap_begin < next_heap_end - next_heap_begin;
}
void next_free(void* p) noexcept;
std::size_t next_usable_size(void* p) noexcept;

}  // namespace spanheap::shim
