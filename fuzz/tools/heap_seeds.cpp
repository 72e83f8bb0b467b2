// The heap seed families: alloc_free (every size class, many cycles, large objects, alignments,
// pacing), procs_interleave (stale Ps and lazy flushes) and page_heap (page counts, memory limits,
// OS failures).
#include <fmt/format.h>

#include <algorithm>

#include "seeds.hpp"

namespace spanheap::fuzz::corpus {

void alloc_free_seeds(Seeds& out) {
  const auto sizes = class_sizes();
  const std::size_t half = sizes.size() / 2;
  for (FlushPolicy f : policies) {
    // Every class, in two halves: one object per class (its exact size), free every other one,
    // cycle, reuse with size + 1 (the next class), cycle, sweep.
    for (int part = 0; part < 2; ++part) {
      const std::size_t lo = part == 0 ? 0 : half, hi = part == 0 ? half : sizes.size();
      Program p{.target = Target::alloc_free, .config = config(1, f), .ops = {}};
      for (std::size_t i = lo; i < hi; ++i)
        p.ops.push_back(Alloc{.proc = via_heap, .size = sizes[i], .align = 16});
      for (unsigned i = 0; i < (hi - lo) / 2; ++i) p.ops.push_back(Free{via_heap, i});
      p.ops.push_back(Collect{});
      for (std::size_t i = lo; i < hi; i += 4)
        p.ops.push_back(Alloc{.proc = via_heap, .size = sizes[i] + 1, .align = 16});
      p.ops.push_back(Collect{});
      p.ops.push_back(SweepOne{});
      p.ops.push_back(Verify{});
      out[fmt::format("every_class_{}_{}", part == 0 ? "small" : "big", pname(f))] = p;
    }

    // Many cycles with objects surviving several of them: rounds until the budget is spent.
    Rng rng;
    Program q{.target = Target::alloc_free, .config = config(2, f), .ops = {}};
    for (int round = 0;; ++round) {
      std::vector<Op> ops;
      for (int i = 0; i < 4; ++i)
        ops.push_back(Alloc{.proc = via_heap, .size = 8 + rng.below(2000), .align = 16});
      for (int i = 0; i < 3; ++i) ops.push_back(Free{via_heap, rng.below(256)});
      ops.push_back(Refill{rng.below(256)});
      ops.push_back(round % 3 == 0 ? Op{SweepOne{}} : Op{Collect{}});
      if (!append_if_fits(q, ops)) break;
    }
    out["many_cycles_" + pname(f)] = q;
  }
  // Large objects and every alignment.
  Program large{.target = Target::alloc_free, .config = config(1, FlushPolicy::lazy), .ops = {}};
  for (std::size_t s : {32769ul, 40000ul, 65536ul, 100000ul, 200000ul, 262143ul})
    large.ops.push_back(Alloc{.proc = via_heap, .size = s, .align = 16});
  large.ops.push_back(Free{via_heap, 1});
  large.ops.push_back(Free{via_heap, 3});
  large.ops.push_back(Collect{});
  large.ops.push_back(Collect{});
  large.ops.push_back(Alloc{.proc = via_heap, .size = 50000, .align = 8192});
  large.ops.push_back(Check{0});
  out["large_objects"] = large;

  Program align{.target = Target::alloc_free, .config = config(1, FlushPolicy::lazy), .ops = {}};
  for (std::size_t a = 1; a <= page_size; a *= 2) {
    for (std::size_t s : {24ul, 3000ul, 20000ul})
      align.ops.push_back(Alloc{.proc = via_heap, .size = s, .align = a});
  }
  align.ops.push_back(Collect{});
  out["alignments"] = align;

  // Pacing on: cycles start by themselves inside allocations.
  Program pacing{
      .target = Target::alloc_free, .config = config(1, FlushPolicy::lazy, 5), .ops = {}};
  Rng rng;
  for (int i = 0;; ++i) {
    std::vector<Op> ops{Alloc{.proc = via_heap, .size = 64 + rng.below(4000), .align = 16}};
    if (i % 2) ops.push_back(Free{via_heap, rng.below(256)});
    if (!append_if_fits(pacing, ops)) break;
  }
  out["pacing"] = pacing;

  // The allocation fast paths: no allocation hooks (an arena of 3 MiB: execution.cpp), so the
  // thread binds its P and allocations take the fast path, its next-word exit (more than a word
  // of a class) and, under owner reuse, collections of the frees in between.
  for (ReusePolicy r : {ReusePolicy::owner, ReusePolicy::next_cycle}) {
    Program fast{.target = Target::alloc_free, .config = config(1, FlushPolicy::lazy), .ops = {}};
    fast.config.arena_mib = 3;
    fast.config.reuse = r;
    // 66 objects of one class: past the first word of the span's bitmap (the next-word exit).
    for (int i = 0; i < 66; ++i) fast.ops.push_back(Alloc{.proc = via_heap, .size = 16});
    Rng frng;
    for (int round = 0;; ++round) {
      std::vector<Op> ops;
      for (int i = 0; i < 3; ++i) ops.push_back(Free{via_heap, frng.below(256)});
      for (int i = 0; i < 2; ++i) ops.push_back(Alloc{.proc = via_heap, .size = 16});
      if (round % 4 == 3) ops.push_back(Collect{});
      if (!append_if_fits(fast, ops)) break;
    }
    out[r == ReusePolicy::owner ? "fast_paths_owner" : "fast_paths_next_cycle"] = fast;
  }
}

void procs_interleave_seeds(Seeds& out) {
  const auto sizes = class_sizes();
  for (FlushPolicy f : policies) {
    for (unsigned procs : {2u, 4u, 8u}) {
      // Every P caches spans of several classes, a cycle makes them stale, then a schedule mixes
      // lazy flushes at acquire, idle flushes, cross-P frees and sweeping; rounds until the
      // budget is spent (the first one ends with flush_all while caches are stale, Go #57523).
      Rng rng;
      rng.s += procs;
      Program p{.target = Target::procs_interleave, .config = config(procs, f), .ops = {}};
      for (int round = 0;; ++round) {
        std::vector<Op> ops;
        for (unsigned i = 0; i < std::max(procs, 4u); ++i) {
          ops.push_back(Alloc{.proc = i % procs,
                              .size = sizes[rng.below(static_cast<unsigned>(sizes.size()))],
                              .align = 16});
        }
        ops.push_back(BeginCycle{});
        for (unsigned i = 0; i < procs; ++i) {
          switch (rng.below(5)) {
            case 0:
              ops.push_back(Wake{i});
              break;
            case 1:
              ops.push_back(FlushIdle{i});
              break;
            case 2:
              ops.push_back(Free{.proc = i, .pick = rng.below(256)});
              break;
            case 3:
              ops.push_back(Alloc{.proc = i, .size = 48, .align = 16});
              break;
            default:
              break;  // stays idle and stale
          }
        }
        ops.push_back(ProportionalSweep{.bytes = 64 * (1 + rng.below(500))});
        ops.push_back(SweepOne{});
        if (round == 0) ops.push_back(FlushAll{});
        if (round % 2) ops.push_back(RaggedBarrier{});
        for (unsigned i = 0; i < std::max(procs, 4u) / 2; ++i)
          ops.push_back(Free{.proc = rng.below(procs), .pick = rng.below(256)});
        if (!append_if_fits(p, ops)) break;
      }
      out[fmt::format("stale_ps_{}p_{}", procs, pname(f))] = p;
    }
  }
  // Cycles back to back while Ps stay idle: begin_cycle must finish the previous cycle's flushes.
  Program idle{
      .target = Target::procs_interleave, .config = config(3, FlushPolicy::lazy), .ops = {}};
  for (unsigned i = 0; i < 3; ++i) idle.ops.push_back(Alloc{.proc = i, .size = 16, .align = 16});
  for (int c = 0; c < 5; ++c) idle.ops.push_back(BeginCycle{});
  idle.ops.push_back(Free{.proc = 0, .pick = 2});
  idle.ops.push_back(Wake{1});
  idle.ops.push_back(BeginCycle{});
  idle.ops.push_back(SweepOne{});
  idle.ops.push_back(FlushIdle{2});
  out["idle_ps_back_to_back_cycles"] = idle;
}

void page_heap_seeds(Seeds& out) {
  Rng rng;
  Program many{.target = Target::page_heap, .config = config(1, FlushPolicy::lazy), .ops = {}};
  for (std::size_t pages : {1ul, 2ul, 3ul, 4ul, 5ul, 7ul, 8ul, 9ul, 16ul, 31ul, 64ul, 127ul, 128ul})
    many.ops.push_back(Alloc{.proc = via_heap, .size = pages * page_size, .align = 16});
  for (unsigned i = 0; i < 12; i += 2) many.ops.push_back(Free{via_heap, i});
  many.ops.push_back(Collect{});
  many.ops.push_back(Collect{});
  many.ops.push_back(Collect{});  // idle runs go back to the OS after release_after_cycles
  for (int i = 0; i < 20; ++i)
    many.ops.push_back(
        Alloc{.proc = via_heap, .size = (1 + rng.below(40)) * page_size, .align = 16});
  many.ops.push_back(Verify{});
  out["many_page_counts"] = many;

  Program limit{
      .target = Target::page_heap, .config = config(1, FlushPolicy::lazy, 0, false, 4), .ops = {}};
  for (int i = 0; i < 8; ++i)
    limit.ops.push_back(Alloc{.proc = via_heap, .size = 100 * page_size, .align = 16});
  limit.ops.push_back(Free{via_heap, 0});
  limit.ops.push_back(Collect{});
  limit.ops.push_back(Alloc{.proc = via_heap, .size = 500 * page_size, .align = 16});
  limit.ops.push_back(Alloc{.proc = via_heap, .size = 500 * page_size, .align = 16});
  limit.ops.push_back(Alloc{.proc = via_heap, .size = 100 * page_size, .align = 16});
  out["memory_limit"] = limit;

  Program os{
      .target = Target::page_heap, .config = config(1, FlushPolicy::eager, 0, true), .ops = {}};
  os.ops.push_back(Alloc{.proc = via_heap, .size = 3 * page_size, .align = 16});
  os.ops.push_back(FailOs{.fault = OsFault::fail_commits, .n = 2});
  os.ops.push_back(Alloc{.proc = via_heap, .size = 300 * page_size, .align = 16});
  os.ops.push_back(Alloc{.proc = via_heap, .size = 300 * page_size, .align = 16});
  os.ops.push_back(FailOs{.fault = OsFault::fail_reserves, .n = 1});
  os.ops.push_back(Alloc{.proc = via_heap, .size = 512 * page_size, .align = 16});
  os.ops.push_back(FailOs{.fault = OsFault::cap_committed, .n = 8});
  os.ops.push_back(Alloc{.proc = via_heap, .size = 500 * page_size, .align = 16});
  os.ops.push_back(Free{via_heap, 0});
  os.ops.push_back(Collect{});
  os.ops.push_back(FailOs{.fault = OsFault::cap_committed, .n = 0});
  os.ops.push_back(Alloc{.proc = via_heap, .size = 500 * page_size, .align = 16});
  os.ops.push_back(FlushAll{});
  os.ops.push_back(Verify{});
  out["os_failures"] = os;
}

}  // namespace spanheap::fuzz::corpus
