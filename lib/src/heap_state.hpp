// heap_state: the aggregate of one heap's layers (Go's mheap_ plus allp and the GC state). Each
// layer's functions take the HeapState and touch their own part, the sweepgen and the counters.
#pragma once

#include <spanheap/spanheap.hpp>
#include <spanheap/testing.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "page_heap.hpp"
#include "types.hpp"
#include "world.hpp"

namespace spanheap::detail {

struct Pacer {
  std::atomic<std::uint64_t> allocated{0};  // bytes handed out since the last bump (refills
                                            // count a span's free bytes, like Go's heap_live)
  std::atomic<std::uint64_t> trigger{0};    // start a cycle when allocated reaches it (0 = off)
  std::atomic<bool> requested{false};
  std::atomic<std::uint64_t> live_at_bump{0};
};

class HeapState {
 public:
  explicit HeapState(const Options& options);
  ~HeapState();
  HeapState(const HeapState&) = delete;
  HeapState& operator=(const HeapState&) = delete;

  bool debug_checks() const noexcept { return checks != CheckLevel::release; }
  bool expensive_checks() const noexcept { return checks == CheckLevel::expensive; }
  std::uint32_t sg() const noexcept { return sweepgen.load(std::memory_order_acquire); }
  ProcState& proc(unsigned i) noexcept { return procs[i]; }
  ProcState& sweep_slot(unsigned i) noexcept { return procs[nprocs + i]; }

  Options options;
  OsMemory* os;
  std::uint64_t uid;  // unique per heap in the process (never reused)
  unsigned nprocs;    // Ps
  unsigned nslots;    // Ps + sweeper slots
  CheckLevel checks;
  bool trace;
  bool allocation_hooks = false;  // immutable after init: a debug option acts at every allocation

  std::atomic<std::uint32_t> sweepgen{0};  // world: written only while stopped
  PageHeap pages;
  Central central[max_size_classes];
  // Bit c: a span of small class c has existed (set in cache_span before the span is published;
  // read with the world stopped). Only these classes can have listed or cached spans, so the
  // verifier walks their lists and cache entries instead of every class's.
  std::atomic<std::uint64_t> classes_used[(max_size_classes + 63) / 64] = {};
  std::unique_ptr<ProcState[]> procs;
  World world;
  SweepState sweep;
  Pacer pacer;
  HeapCounters counters;
  std::vector<std::thread> sweeper_threads;
  // Test seams (testing::set_protocol_hook): called at protocol points where another thread could
  // observe the heap mid-transition. Set only while no heap call runs; null in normal use.
  std::function<void(testing::ProtocolPoint)> protocol_hook;
};

}  // namespace spanheap::detail
