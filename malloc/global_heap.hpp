// global_heap: the one process-wide spanheap::Heap behind malloc and operator new, built lazily on
// the first call without recursing into itself, plus the two kinds of memory it does not own that
// the shim must still answer for. See docs/malloc.md.
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstddef>

namespace spanheap::shim {

enum class InitState : int { uninitialised, initialising, ready };

extern std::atomic<InitState> init_state;
extern Heap* the_heap;

// The heap, built on first use. nullptr only for the thread that is building it (the heap's own
// start-up allocates: its state, its P array, its sweeper threads): that thread is served from the
// bootstrap arena instead. Other threads wait for the build to finish.
Heap* global_heap_slow();
inline Heap* global_heap() {
  if (init_state.load(std::memory_order_acquire) == InitState::ready) [[likely]]
    return the_heap;
  return global_heap_slow();
}

// Bootstrap arena: a fixed zero-filled region that serves the building thread. Its blocks are
// never reused (a free is a no-op); each carries its size in the 16 bytes in front of it.
void* bootstrap_alloc(std::size_t size, std::size_t align) noexcept;
bool bootstrap_owns(const void* p) noexcept;
std::size_t bootstrap_size(const void* p) noexcept;

// The next allocator (normally glibc's), for pointers it handed out before the shim started: the
// brk heap as it was when the heap was built, which is where glibc's main arena lives when the shim
// is loaded after glibc's malloc has run (dlopen). The LD_PRELOAD and linked cases leave it empty.
bool next_allocator_owns(const void* p) noexcept;
void next_free(void* p) noexcept;
std::size_t next_usable_size(void* p) noexcept;

}  // namespace spanheap::shim
