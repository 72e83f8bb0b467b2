// size_classes: the table of object sizes (Go's sizeclasses.go), generated at startup by the same
// rule Go's mksizeclasses.go uses, O(1) size -> class lookup, and division by the object size
// without a divide instruction. See docs/design.md §"Size classes".
#pragma once

#include <cstddef>
#include <cstdint>

#include "types.hpp"

namespace spanheap::detail {

// Number of classes including class 0 (large).
unsigned num_size_classes() noexcept;
const SizeClass& size_class(unsigned c) noexcept;

// The smallest class whose size is ≥ size and a multiple of align (so every object of the class
// is aligned: spans start on a page boundary). 0 when the request must be a large object.
// Requires: align is a power of two ≤ page_size.
unsigned size_to_class(std::size_t size, std::size_t align) noexcept;

// Slot index of byte `offset` within a span of class c (offset < npages * page_size).
inline std::uint32_t object_index(std::uintptr_t offset, const SizeClass& sc) noexcept {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(offset) * sc.div_mul) >> 32);
}

}  // namespace spanheap::detail
