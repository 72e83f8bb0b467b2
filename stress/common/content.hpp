// Content cookies: every object the drivers allocate is filled with the oracle library's content
// pattern (oracle/content.hpp) seeded by a per-allocation key, and re-read before it is freed or
// handed on (mimalloc's test-stress oracle, with a random key so two owners of one slot write
// different patterns). A slot handed out twice, a write into a live object by the heap, or memory
// reused before its free shows up as a content mismatch naming the object, the byte and both
// values.
#pragma once

#include <spanheap/oracle/rng.hpp>
#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace spanheap::stress {

using Rng = oracle::Rng;

// An object owned by a driver thread.
struct Obj {
  void* p = nullptr;
  std::size_t size = 0;
  std::uint64_t key = 0;
  std::size_t align = 16;
};

// Objects at least this large carry their own key and size in their first two words, so they can
// be handed to another thread as a bare pointer (transfer slots, survivor slots).
inline constexpr std::size_t min_transfer_size = 16;

// Fills [p, p+size) with the pattern of `key`; objects of min_transfer_size bytes or more fold
// their size into word 1 (word 0 is the key itself), so from_header() can rebuild them.
void fill(const Obj& o);

// Re-reads the pattern. On mismatch returns false and describes the first bad byte in `why`.
bool check(const Obj& o, std::string* why);

// Rebuilds the record of a transferable object from its header (size >= min_transfer_size).
// Returns false (with `why`) when the header itself is damaged.
bool from_header(void* p, Obj* out, std::string* why);

// A non-zero key unique enough per allocation: random bits mixed with the address.
std::uint64_t make_key(Rng& rng, const void* p);

// Size distribution (mimalloc's test-stress, widened): mostly small sizes spread over every
// class, some medium, `large_per_mille` large objects up to `max_large`, a few zero-size and
// tiny objects.
std::size_t draw_size(Rng& rng, std::size_t max_large, unsigned large_per_mille = 10);

// Alignment: 16 most of the time, sometimes a larger power of two up to the page size.
std::size_t draw_align(Rng& rng);

// Allocates through `alloc(size, align)` and fills; checks the pointer's alignment and that the
// heap classifies it as a live object start. On a failed check returns an Obj with p set and
// writes `why`; on nullptr returns Obj{} and writes `why`.
template <typename AllocFn>
Obj make_object(Heap& heap, Rng& rng, std::size_t size, std::size_t align, AllocFn&& alloc,
                std::string* why);

std::string describe(const Obj& o);

}  // namespace spanheap::stress

#include "content_inl.hpp"
