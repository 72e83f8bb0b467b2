// Helpers shared by the unit tests (lib/src/*_test.cpp).
#pragma once

#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace spanheap::test {

// Waits (yielding) until `ready` holds or `limit` passes; true when it held. The bound turns a
// thread that never arrives into a failed expectation instead of a hung test.
inline bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A deterministic heap: nothing happens unless the test asks for it.
// True when verify() named invariant `id` among its violations.
inline bool names(const VerifyResult& r, const std::string& id) {
  return std::any_of(r.violations.begin(), r.violations.end(),
                     [&](const Violation& v) { return v.invariant == id; });
}

inline Options deterministic(unsigned procs, testing::RecordingHandler& rec,
                             FlushPolicy flush = FlushPolicy::lazy) {
  Options o;
  o.procs = procs;
  o.sweepers = 0;
  o.gc_percent = 0;
  o.flush = flush;
  o.checks = CheckLevel::expensive;
  o.arena_bytes = std::size_t{1} << 20;
  o.error_handler = rec.handler();
  return o;
}

// The snapshot's span holding `p`, or nullptr.
inline const testing::SpanInfo* find_span(const testing::HeapSnapshot& snap, const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (const testing::SpanInfo& s : snap.spans)
    if (a >= s.base && a < s.base + s.npages * page_size) return &s;
  return nullptr;
}
// The same, for a `p` that must be in a span. Never null: callers dereference it, so a pointer in
// no span stops the test binary here, naming the pointer, rather than as a null dereference.
inline const testing::SpanInfo* span_containing(const testing::HeapSnapshot& snap, const void* p) {
  if (const testing::SpanInfo* s = find_span(snap, p)) return s;
  std::fprintf(stderr, "test::span_containing: no span of the snapshot holds %p\n", p);
  std::abort();
}

// Allocates objects of `size` with `allocate(size)` until the span holding `obj` (owned by, or
// current in, the allocating P's cache) leaves that cache for central: the P exhausts about
// max_owned_spans() more spans of the class after it. Returns what it allocated (the caller frees
// it). Fails the test, rather than hanging, when the span is still cached after four times that
// many spans.
template <typename Allocate>
std::vector<void*> evict_to_central(Heap& heap, std::size_t size, const void* obj,
                                    Allocate allocate) {
  std::vector<void*> out;
  for (unsigned spans = 0; spans <= 4 * testing::max_owned_spans(); spans++) {
    const testing::HeapSnapshot snap = testing::snapshot(heap);
    const testing::SpanInfo* s = find_span(snap, obj);
    if (s == nullptr || s->location != testing::SpanLocation::cached) return out;
    for (unsigned i = 0; i < s->nelems; i++) out.push_back(allocate(size));
  }
  ADD_FAILURE() << "the span holding " << obj << " is still cached after "
                << 4 * testing::max_owned_spans() << " more spans of its class";
  return out;
}
inline std::vector<void*> evict_to_central(Heap& heap, Proc p, std::size_t size, const void* obj) {
  return evict_to_central(heap, size, obj, [&](std::size_t n) { return p.allocate(n); });
}

#define EXPECT_VERIFIED(heap)                             \
  do {                                                    \
    const ::spanheap::VerifyResult vr_ = (heap).verify(); \
    EXPECT_TRUE(vr_.ok()) << vr_.to_string();             \
  } while (0)

}  // namespace spanheap::test
