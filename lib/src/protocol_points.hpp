// protocol_points: where another thread could observe the heap mid-transition, as the product
// names them. The testing seam (spanheap/testing.hpp) exposes the same points to tests and maps
// its public enum onto this one, so that the product's headers need not include the seam.
#pragma once

#include <cstdint>
#include <functional>

namespace spanheap::detail {

enum class ProtocolPoint : std::uint8_t {
  sweep_owned,
  flush_released_span,
  page_free_begin,
  free_move_to_partial,
  find_object_span_read,
  stop_found_idle_proc,
  binding_published,
  took_idle_proc,
  find_object_between_loads,
  remote_free_before_lock,
  remote_free_recorded,
  home_arena_copied,
  home_arena_published,
};

// Set only while no heap call runs; null in normal use.
using ProtocolHook = std::function<void(ProtocolPoint)>;

}  // namespace spanheap::detail
