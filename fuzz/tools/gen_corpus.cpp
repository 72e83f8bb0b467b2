// gen_corpus: writes the seed corpus (fuzz/corpus/<target>/seed-*) and the dictionaries
// (fuzz/dict/<target>.dict) from programs built here with the Program types and encode(), so the
// seeds reach deep states on purpose: every size class, many cycles, large objects, stale Ps and
// lazy flushes, every bad-free kind, OS failures. Programs are described in C++, never as bytes.
//
//   spanheap_fuzz_gen_corpus FUZZ_DIR          (re)write FUZZ_DIR/corpus/*/seed-* and FUZZ_DIR/dict
//   spanheap_fuzz_gen_corpus --check FUZZ_DIR  fail if a generated file is missing or differs
//
// Files that fuzzing added (named by SHA-1) are left alone. docs/fuzzing.md explains the corpus.
#include <fmt/format.h>
#include <spanheap/testing.hpp>
#include <spanheap/version.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "program.hpp"

namespace fs = std::filesystem;
using namespace spanheap;
using namespace spanheap::fuzz;

namespace {

struct Rng {  // fixed seed: the corpus is a pure function of this file
  std::uint64_t s = 0x5eed;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
};

std::vector<std::size_t> class_sizes() {
  std::vector<std::size_t> out;
  for (const auto& c : testing::size_classes()) out.push_back(c.size);
  return out;
}

HeapConfig config(unsigned procs, FlushPolicy flush, unsigned gc_percent = 0, bool fake = false,
                  unsigned limit_mib = 0) {
  return HeapConfig{.procs = procs,
                    .flush = flush,
                    .gc_percent = gc_percent,
                    .arena_mib = 1,
                    .fake_os = fake,
                    .memory_limit_mib = limit_mib};
}

using Seeds = std::map<std::string, Program>;

constexpr FlushPolicy policies[] = {FlushPolicy::lazy, FlushPolicy::eager};
std::string pname(FlushPolicy f) { return f == FlushPolicy::lazy ? "lazy" : "eager"; }

// Seeds must fit the per-input budget (program.hpp: max_input_bytes, max_ops, max_boundaries), or
// the engines would cut them short; a seed that reaches deeper than one budget allows is split
// into several (each starts from a fresh heap, so each is built to reach its state on its own).
bool fits(const Program& p) {
  const auto bytes = encode(p);
  return bytes && bytes->size() <= max_input_bytes;
}

// Appends `ops` to `p` if the result still fits; false (and `p` unchanged) otherwise.
bool append_if_fits(Program& p, const std::vector<Op>& ops) {
  Program q = p;
  q.ops.insert(q.ops.end(), ops.begin(), ops.end());
  if (!fits(q)) return false;
  p = std::move(q);
  return true;
}

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

void bad_free_seeds(Seeds& out) {
  for (FlushPolicy f : policies) {
    Program p{.target = Target::bad_free, .config = config(2, f), .ops = {}};
    for (std::size_t s : {8ul, 48ul, 500ul, 3000ul, 40000ul, 200000ul})
      p.ops.push_back(Alloc{.proc = 0, .size = s, .align = 16});
    for (unsigned k = 0; k < bad_kind_count; ++k)
      p.ops.push_back(BadFree{.kind = static_cast<BadKind>(k), .proc = 1, .pick = k, .offset = 7});
    p.ops.push_back(Free{.proc = 1, .pick = 0});
    p.ops.push_back(Free{.proc = 0, .pick = 3});
    p.ops.push_back(BadFree{.kind = BadKind::double_pending, .proc = 0, .pick = 0, .offset = 0});
    p.ops.push_back(BadFree{.kind = BadKind::double_pending, .proc = 1, .pick = 1, .offset = 0});
    p.ops.push_back(Collect{});
    p.ops.push_back(BadFree{.kind = BadKind::double_pending, .proc = 1, .pick = 1, .offset = 0});
    p.ops.push_back(Collect{});
    p.ops.push_back(SweepOne{});
    p.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = 0, .pick = 0, .offset = 0});
    p.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = 0, .pick = 1, .offset = 0});
    p.ops.push_back(BeginCycle{});
    p.ops.push_back(BadFree{.kind = BadKind::span_tail, .proc = 0, .pick = 2, .offset = 3});
    p.ops.push_back(Wake{1});
    p.ops.push_back(BadAlloc{.proc = 0, .size = max_alloc_size + 1, .align = 16});
    p.ops.push_back(BadAlloc{.proc = 1, .size = 5, .align = 3});
    // A power of two past max_alloc_size, the largest alignment allocate() honours.
    p.ops.push_back(BadAlloc{.proc = 1, .size = 5, .align = 2 * max_alloc_size});
    out["every_kind_" + pname(f)] = p;
  }
  // A double free whose large span went back to the page heap (pages not reused).
  Program large{.target = Target::bad_free, .config = config(1, FlushPolicy::lazy), .ops = {}};
  large.ops.push_back(Alloc{.proc = 0, .size = 100000, .align = 16});
  large.ops.push_back(Alloc{.proc = 0, .size = 64, .align = 16});
  large.ops.push_back(Free{.proc = 0, .pick = 0});
  large.ops.push_back(Collect{});
  large.ops.push_back(Collect{});
  large.ops.push_back(
      BadFree{.kind = BadKind::double_reclaimed, .proc = 0, .pick = 0, .offset = 0});
  large.ops.push_back(BadFree{.kind = BadKind::interior, .proc = 0, .pick = 0, .offset = 1000});
  out["double_free_released_large"] = large;
}

// Owner reuse (docs/design.md "Reuse") and exact error kinds across sweeps, under both policies
// where the program means something under both. Class 38 (2048 bytes) has 4 slots in one page,
// so a quarter of its slots is one free: every collection below is worth making.
constexpr std::size_t four_slot = 2048;
HeapConfig reuse_config(unsigned procs, FlushPolicy flush, ReusePolicy reuse) {
  HeapConfig c = config(procs, flush);
  c.reuse = reuse;
  return c;
}
std::string rname(ReusePolicy r) { return r == ReusePolicy::owner ? "owner" : "next_cycle"; }
// Two Ps under owner reuse, P0 caching one full span of four slots.
Program one_full_span(Target target) {
  Program p{.target = target,
            .config = reuse_config(2, FlushPolicy::lazy, ReusePolicy::owner),
            .ops = {}};
  for (int i = 0; i < 4; ++i) p.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});
  return p;
}

void reuse_seeds(Seeds& out, Target target) {
  if (target == Target::procs_interleave) {
    // T9a: P0's cached span runs out with a pending free and collects it; T6 returns the full
    // span; a free makes it worth collecting on the swept full list (INV-R1); P1's refill takes it
    // from partial and collects it (T9b); a large object goes back at its free (T10).
    Program p{.target = target,
              .config = reuse_config(2, FlushPolicy::lazy, ReusePolicy::owner),
              .ops = {}};
    for (int i = 0; i < 4; ++i) p.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});
    p.ops.push_back(Free{.proc = 1, .pick = 1});
    p.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});  // T9a
    p.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});  // refill, T6
    p.ops.push_back(Free{.proc = 1, .pick = 0});                        // INV-R1
    p.ops.push_back(Alloc{.proc = 1, .size = four_slot, .align = 16});  // T9b
    p.ops.push_back(FlushAll{});
    p.ops.push_back(Alloc{.proc = 0, .size = 100000, .align = 16});
    p.ops.push_back(Free{.proc = 1, .pick = 5});  // T10
    p.ops.push_back(Alloc{.proc = 1, .size = 100000, .align = 16});
    p.ops.push_back(BeginCycle{});
    p.ops.push_back(Free{.proc = 0, .pick = 2});
    p.ops.push_back(Alloc{.proc = 1, .size = four_slot, .align = 16});
    p.ops.push_back(RaggedBarrier{});
    p.ops.push_back(SweepOne{});
    out["owner_collect_t9_t10"] = p;
    // T6 of a span with a pending free (flush_all) puts it on the partial list (INV-R1), where
    // the next refill collects it (T9b).
    Program u = one_full_span(target);
    u.ops.push_back(Free{.proc = 1, .pick = 2});
    u.ops.push_back(FlushAll{});
    u.ops.push_back(Alloc{.proc = 1, .size = four_slot, .align = 16});
    u.ops.push_back(FlushAll{});
    out["owner_uncache_pending"] = u;
    return;
  }
  if (target != Target::bad_free) return;
  for (ReusePolicy r : {ReusePolicy::next_cycle, ReusePolicy::owner}) {
    // A double free of an object reclaimed three sweeps ago, its span kept by a live anchor:
    // double_free, and inside it invalid_free (a sweep must keep the reclaimed bits it found).
    Program old{.target = target, .config = reuse_config(1, FlushPolicy::lazy, r), .ops = {}};
    old.ops = {Alloc{.proc = 0, .size = 64, .align = 16}, Alloc{.proc = 0, .size = 64, .align = 16},
               Free{.proc = 0, .pick = 1}};
    for (int c = 0; c < 4; ++c) old.ops.push_back(Collect{});
    old.ops.push_back(
        BadFree{.kind = BadKind::double_reclaimed, .proc = 0, .pick = 0, .offset = 0});
    old.ops.push_back(
        BadFree{.kind = BadKind::reclaimed_interior, .proc = 0, .pick = 0, .offset = 5});
    out["double_free_three_sweeps_ago_" + rname(r)] = old;
    for (FlushPolicy f : policies) {
      // A span full of pending frees, off every cache at the cycle: a bad free's own sweep
      // empties it and must keep it (the pointer is judged against its slots: invalid_free), and
      // the second free of each reclaimed object is double_free; after the next cycle releases
      // the span, double_free by its pages' history.
      Program own{.target = target, .config = reuse_config(2, f, r), .ops = {}};
      for (int i = 0; i < 5; ++i)
        own.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});
      for (int i = 0; i < 4; ++i) own.ops.push_back(Free{.proc = 1, .pick = 0});
      own.ops.push_back(BeginCycle{});
      own.ops.push_back(Wake{1});
      own.ops.push_back(
          BadFree{.kind = BadKind::pending_interior, .proc = 1, .pick = 0, .offset = 100});
      own.ops.push_back(
          BadFree{.kind = BadKind::double_reclaimed, .proc = 1, .pick = 1, .offset = 0});
      own.ops.push_back(
          BadFree{.kind = BadKind::reclaimed_interior, .proc = 1, .pick = 2, .offset = 0});
      own.ops.push_back(Collect{});
      own.ops.push_back(Collect{});
      own.ops.push_back(
          BadFree{.kind = BadKind::double_reclaimed, .proc = 0, .pick = 3, .offset = 0});
      out[fmt::format("bad_free_own_sweep_empties_span_{}_{}", pname(f), rname(r))] = own;
    }
  }
  // Owner reuse: frees collected by the owner (T9a), a second free of a collected slot that was
  // not handed out again, and of one that was; a large object's pages back at its free (T10).
  Program t9 = one_full_span(target);
  t9.ops.push_back(Free{.proc = 0, .pick = 0});
  t9.ops.push_back(Free{.proc = 1, .pick = 0});
  t9.ops.push_back(BadFree{.kind = BadKind::double_pending, .proc = 1, .pick = 0, .offset = 0});
  t9.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});  // T9a
  t9.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = 1, .pick = 1, .offset = 0});
  t9.ops.push_back(BadFree{.kind = BadKind::reclaimed_interior, .proc = 0, .pick = 1, .offset = 9});
  t9.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = 0, .pick = 0, .offset = 0});
  t9.ops.push_back(Alloc{.proc = 1, .size = 100000, .align = 16});
  t9.ops.push_back(Free{.proc = 0, .pick = 3});  // T10
  t9.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = 1, .pick = 2, .offset = 0});
  t9.ops.push_back(
      BadFree{.kind = BadKind::reclaimed_interior, .proc = 0, .pick = 2, .offset = 999});
  t9.ops.push_back(Alloc{.proc = 0, .size = 100000, .align = 16});
  t9.ops.push_back(Collect{});
  t9.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = 1, .pick = 2, .offset = 0});
  out["owner_collected_double_frees"] = t9;
  // A slot reclaimed by a collection, then a cycle, then another collection of the span (T9b, a
  // slot below it taken): the second free of the first object is still double_free.
  Program again = one_full_span(target);
  again.ops.push_back(Free{.proc = 1, .pick = 0});
  again.ops.push_back(Free{.proc = 1, .pick = 2});
  again.ops.push_back(Alloc{.proc = 0, .size = four_slot, .align = 16});  // T9a: slots 0 and 3
  again.ops.push_back(Collect{});
  again.ops.push_back(Free{.proc = 1, .pick = 0});
  again.ops.push_back(Alloc{.proc = 1, .size = four_slot, .align = 16});  // T9b: slot 1
  again.ops.push_back(
      BadFree{.kind = BadKind::double_reclaimed, .proc = 1, .pick = 1, .offset = 0});
  out["owner_double_free_across_collections"] = again;
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

void size_classes_seeds(Seeds& out) {
  // Every class edge (size and size + 1, four alignments), in as many seeds as the budget needs.
  Program p{.target = Target::size_classes, .config = {}, .ops = {}};
  int part = 0;
  for (std::size_t s : class_sizes()) {
    std::vector<Op> ops;
    for (std::size_t a : {1ul, 16ul, 64ul, 4096ul}) {
      ops.push_back(SizeQuery{.size = s, .align = a});
      ops.push_back(SizeQuery{.size = s + 1, .align = a});
    }
    if (!append_if_fits(p, ops)) {
      out[fmt::format("every_class_edge_{}", part++)] = p;
      p.ops = ops;
    }
  }
  out[fmt::format("every_class_edge_{}", part)] = p;
  Program big{.target = Target::size_classes, .config = {}, .ops = {}};
  for (std::size_t s : {0ul, 1ul, 32767ul, 32768ul, 32769ul, 1ul << 20, 0xffffffffUL})
    big.ops.push_back(SizeQuery{.size = s, .align = 16});
  out["bounds"] = big;
}

void pacing_seeds(Seeds& out) {
  // Plans a heap makes: small and large heaps at the usual gc_percent values, the trigger floor's
  // edge, memory limits with room and without, and the sweep target at 90% of the trigger.
  constexpr std::uint64_t mib = std::uint64_t{1} << 20;
  for (unsigned gc : {0u, 50u, 100u, 200u}) {
    Program usual{.target = Target::pacing, .config = {}, .ops = {}};
    for (std::uint64_t live : {std::uint64_t{0}, 64 * 1024ul, 4 * mib, 40 * mib, 3 * 1024 * mib}) {
      usual.ops.push_back(PacingQuery{.survivors = live,
                                      .gc_percent = gc,
                                      .memory_limit = 0,
                                      .committed = live + live / 4,
                                      .pages_to_sweep = live / page_size + 3,
                                      .allocated = live / 2});
    }
    out[fmt::format("usual_heaps_gc{}", gc)] = usual;
  }
  Program edges{.target = Target::pacing, .config = {}, .ops = {}};
  const std::uint64_t floor_live = 4 * mib;  // gc 100: survivors at the floor, either side
  for (std::uint64_t live : {floor_live - 1, floor_live, floor_live + 1})
    edges.ops.push_back(PacingQuery{.survivors = live,
                                    .gc_percent = 100,
                                    .memory_limit = 0,
                                    .committed = live,
                                    .pages_to_sweep = 512,
                                    .allocated = floor_live / 10 * 9});
  for (std::uint64_t committed : {0ul, 50 * mib, 89 * mib, 90 * mib, 91 * mib, 200 * mib})
    edges.ops.push_back(PacingQuery{.survivors = 30 * mib,
                                    .gc_percent = 100,
                                    .memory_limit = 100 * mib,
                                    .committed = committed,
                                    .pages_to_sweep = 4096,
                                    .allocated = 9 * mib});
  edges.ops.push_back(PacingQuery{.survivors = 0,
                                  .gc_percent = 0,
                                  .memory_limit = 64 * mib,
                                  .committed = 8 * mib,
                                  .pages_to_sweep = 1,
                                  .allocated = 1});
  out["floor_and_limits"] = edges;
}

// Dictionary tokens: the encoded bytes of single interesting operations (the header removed), so
// libFuzzer/AFL++ can splice whole operations.
std::vector<std::vector<std::uint8_t>> tokens(Target target, const Seeds& seeds) {
  std::vector<std::vector<std::uint8_t>> out;
  std::map<std::size_t, int> per_kind;
  for (const auto& [name, program] : seeds) {
    for (const Op& op : program.ops) {
      if (per_kind[op.index()]++ >= 6) continue;
      Program one{.target = target, .config = program.config, .ops = {op}};
      auto bytes = encode(one);
      if (!bytes) continue;
      const std::size_t header = has_heap(target) ? 2 : 0;
      out.emplace_back(bytes->begin() + static_cast<std::ptrdiff_t>(header), bytes->end());
    }
  }
  return out;
}

std::string dict_text(Target target, const Seeds& seeds) {
  std::string text = fmt::format(
      "# {} dictionary: whole encoded operations, written by fuzz/tools/gen_corpus.cpp.\n",
      to_string(target));
  int n = 0;
  for (const auto& tok : tokens(target, seeds)) {
    std::string s;
    for (auto b : tok) s += fmt::format("\\x{:02x}", b);
    text += fmt::format("op{}=\"{}\"\n", n++, s);
  }
  return text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  const bool check = argc == 3 && std::string(argv[1]) == "--check";
  if (!(argc == 2 || check)) {
    fmt::print(stderr, "usage: {} [--check] FUZZ_DIR\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[argc - 1];
  int bad = 0, written = 0;
  auto emit = [&](const fs::path& path, const std::string& content) {
    if (check) {
      if (!fs::exists(path) || read(path) != content) {
        fmt::print(stderr, "{} is missing or stale: run fuzz/tools/gen_corpus (docs/fuzzing.md)\n",
                   path.string());
        ++bad;
      }
      return;
    }
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    ++written;
  };
  for (Target t : all_targets) {
    Seeds seeds;
    switch (t) {
      case Target::alloc_free:
        alloc_free_seeds(seeds);
        break;
      case Target::procs_interleave:
        procs_interleave_seeds(seeds);
        break;
      case Target::bad_free:
        bad_free_seeds(seeds);
        break;
      case Target::page_heap:
        page_heap_seeds(seeds);
        break;
      case Target::size_classes:
        size_classes_seeds(seeds);
        break;
      case Target::pacing:
        pacing_seeds(seeds);
        break;
    }
    reuse_seeds(seeds, t);
    for (const auto& [name, program] : seeds) {
      const auto bytes = encode(program);
      if (bytes && bytes->size() > max_input_bytes) {
        fmt::print(stderr, "{}/{}: {} bytes, more than max_input_bytes\n", to_string(t), name,
                   bytes->size());
        return 1;
      }
      if (!bytes || decode(t, *bytes) != program) {
        fmt::print(stderr, "{}/{}: does not encode to bytes that decode back\n{}{}", to_string(t),
                   name, to_trace(program),
                   bytes ? to_trace(decode(t, *bytes)) : "(no encoding)\n");
        return 1;
      }
      emit(root / "corpus" / to_string(t) / ("seed-" + name),
           std::string(bytes->begin(), bytes->end()));
    }
    emit(root / "dict" / (std::string(to_string(t)) + ".dict"), dict_text(t, seeds));
  }
  if (check) {
    if (bad != 0) return 1;
    fmt::print("corpus and dictionaries are up to date\n");
  } else {
    fmt::print("wrote {} files under {}\n", written, root.string());
  }
  return 0;
}
