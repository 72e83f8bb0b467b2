// The bad_free seed family (every bad-free kind, a double free of a released large span) and the
// owner-reuse seeds of procs_interleave and bad_free (collections, and exact error kinds across
// sweeps under both reuse policies).
#include <fmt/format.h>

#include "seeds.hpp"

namespace spanheap::fuzz::corpus {

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

namespace {

// Owner reuse (docs/design.md "Reuse") and exact error kinds across sweeps, under both policies
// where the program means something under both. Class 38 (2048 bytes) has 4 slots in one page,
// so a third of its slots is one free: every collection below is worth making.
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

// T9a: P0's cached span runs out with a pending free and collects it; T6 returns the full
// span; a free makes it worth collecting on the swept full list (INV-R1); P1's refill takes it
// from partial and collects it (T9b); a large object goes back at its free (T10).
void owner_collect_interleave_seeds(Seeds& out, Target target) {
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
}

// Double frees of objects reclaimed sweeps ago, under both reuse policies.
void reclaimed_double_free_seeds(Seeds& out, Target target) {
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
}

void owner_collected_double_free_seeds(Seeds& out, Target target) {
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

// The facade (via_heap: the calling thread's own P, the library's fast paths) among explicit Ps,
// under both reuse policies and flush policies: its owner frees into spans it caches (the fast
// free), frees of objects another P caches (the fast path's remote exit), explicit Ps' frees into
// the facade's spans, allocations that run out of a word and collect (the fast path's next-word
// exit), and a cycle that stops the world while the facade's P is bound to the executing thread.
void facade_interleave_seeds(Seeds& out, Target target) {
  for (ReusePolicy r : {ReusePolicy::owner, ReusePolicy::next_cycle}) {
    for (FlushPolicy f : policies) {
      Program p{.target = target, .config = reuse_config(3, f, r), .ops = {}};
      // Arenas of 3 and 4 MiB: no allocation hooks, so the facade's allocations take the fast
      // paths and its P binds (execution.cpp); the two sizes are the two growth rules.
      p.config.arena_mib = f == FlushPolicy::lazy ? 3 : 4;
      for (int i = 0; i < 8; ++i) p.ops.push_back(Alloc{.proc = via_heap, .size = four_slot});
      p.ops.push_back(Alloc{.proc = 2, .size = 48});
      p.ops.push_back(Alloc{.proc = 2, .size = four_slot});
      p.ops.push_back(Free{.proc = via_heap, .pick = 0});  // the facade's own: the fast free
      p.ops.push_back(Free{.proc = 1, .pick = 1});         // another P's into the facade's span
      p.ops.push_back(Free{.proc = via_heap, .pick = 7});  // P2's object: the remote exit
      p.ops.push_back(Free{.proc = via_heap, .pick = 2});
      for (int i = 0; i < 3; ++i) p.ops.push_back(Alloc{.proc = via_heap, .size = four_slot});
      p.ops.push_back(Alloc{.proc = via_heap, .size = 48});
      p.ops.push_back(BeginCycle{});  // stops the world with the facade's P bound
      p.ops.push_back(Free{.proc = via_heap, .pick = 3});
      if (target == Target::procs_interleave) p.ops.push_back(FlushIdle{1});
      p.ops.push_back(Alloc{.proc = via_heap, .size = four_slot});
      p.ops.push_back(Wake{2});
      p.ops.push_back(Free{.proc = 0, .pick = 4});
      p.ops.push_back(Free{.proc = via_heap, .pick = 5});
      p.ops.push_back(SweepOne{});
      if (target == Target::procs_interleave) p.ops.push_back(RaggedBarrier{});
      p.ops.push_back(Alloc{.proc = via_heap, .size = four_slot});
      p.ops.push_back(Free{.proc = 2, .pick = 0});
      if (target == Target::bad_free) {
        // A second free of an object the facade freed: pending (the fast free's pending test),
        // then, after the facade collected and reallocated slots, as the model judges it.
        p.ops.push_back(Free{.proc = via_heap, .pick = 1});
        p.ops.push_back(
            BadFree{.kind = BadKind::double_pending, .proc = via_heap, .pick = 0, .offset = 0});
        p.ops.push_back(
            BadFree{.kind = BadKind::interior, .proc = via_heap, .pick = 2, .offset = 8});
        for (int i = 0; i < 3; ++i) p.ops.push_back(Alloc{.proc = via_heap, .size = four_slot});
        p.ops.push_back(
            BadFree{.kind = BadKind::double_reclaimed, .proc = via_heap, .pick = 0, .offset = 0});
      }
      p.ops.push_back(Collect{});
      out[fmt::format("facade_among_ps_{}_{}", rname(r), pname(f))] = p;
    }
  }
  if (target != Target::bad_free) return;
  // Bad frees on the facade's fast paths, small objects (48 bytes: a span of 170 slots and a tail):
  // a double free of an object another P freed into the facade's span (its remote bit, which the
  // owner's fast free must test), and through the facade into a span P1 caches (the remote fast
  // free): a double free, a tail pointer, an interior pointer.
  for (ReusePolicy r : {ReusePolicy::owner, ReusePolicy::next_cycle}) {
    Program q{.target = target, .config = reuse_config(2, FlushPolicy::lazy, r), .ops = {}};
    q.config.arena_mib = 3;
    for (int i = 0; i < 4; ++i) q.ops.push_back(Alloc{.proc = via_heap, .size = 48});
    for (int i = 0; i < 4; ++i) q.ops.push_back(Alloc{.proc = 1, .size = 48});
    q.ops.push_back(Free{.proc = 1, .pick = 1});  // remote, into the facade's span
    q.ops.push_back(BadFree{.kind = BadKind::double_pending, .proc = via_heap, .pick = 0});
    q.ops.push_back(Free{.proc = via_heap, .pick = 0});  // the owner's free, remote bits pending
    q.ops.push_back(Free{.proc = via_heap, .pick = 3});  // P1's object: the remote fast free
    q.ops.push_back(BadFree{.kind = BadKind::double_pending, .proc = via_heap, .pick = 2});
    q.ops.push_back(BadFree{.kind = BadKind::span_tail, .proc = via_heap, .pick = 4, .offset = 3});
    q.ops.push_back(BadFree{.kind = BadKind::interior, .proc = via_heap, .pick = 4, .offset = 5});
    q.ops.push_back(BadFree{.kind = BadKind::pending_interior, .proc = via_heap, .pick = 1});
    q.ops.push_back(Alloc{.proc = via_heap, .size = 48});
    q.ops.push_back(Collect{});
    q.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = via_heap, .pick = 0});
    out["facade_fast_bad_frees_" + rname(r)] = q;
  }
  // The facade's fast frees at their slot tests' edges. A pointer at the first byte of the tail
  // of the facade's own span (offset 0: the one tail address whose slot index is exactly nelems,
  // which the owner's fast free must refuse like any index past the last slot). Then, through the
  // facade into a span P1 caches again after a cycle reclaimed two of its objects and P1 handed
  // one slot out again, a second free of each: the one whose slot is still free is a double free
  // the remote fast free must refuse by its allocated test (the other is skipped, live again).
  for (ReusePolicy r : {ReusePolicy::owner, ReusePolicy::next_cycle}) {
    Program q{.target = target, .config = reuse_config(2, FlushPolicy::lazy, r), .ops = {}};
    q.config.arena_mib = 3;
    for (int i = 0; i < 4; ++i) q.ops.push_back(Alloc{.proc = 1, .size = 48});
    // 80 bytes: a class with a tail, apart from P1's, so that P1's refill after the cycle can
    // only take its own span back.
    q.ops.push_back(Alloc{.proc = via_heap, .size = 80});
    q.ops.push_back(Alloc{.proc = via_heap, .size = 80});
    q.ops.push_back(BadFree{.kind = BadKind::span_tail, .proc = via_heap, .pick = 4, .offset = 0});
    q.ops.push_back(Free{.proc = 1, .pick = 1});
    q.ops.push_back(Free{.proc = 1, .pick = 2});
    q.ops.push_back(Collect{});
    q.ops.push_back(Alloc{.proc = 1, .size = 48});
    q.ops.push_back(Alloc{.proc = via_heap, .size = 80});  // the facade's P flushes: not stale
    q.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = via_heap, .pick = 0});
    q.ops.push_back(BadFree{.kind = BadKind::double_reclaimed, .proc = via_heap, .pick = 1});
    q.ops.push_back(Collect{});
    out["facade_fast_slot_edges_" + rname(r)] = q;
  }
}

}  // namespace

void reuse_seeds(Seeds& out, Target target) {
  if (target == Target::procs_interleave || target == Target::bad_free)
    facade_interleave_seeds(out, target);
  if (target == Target::procs_interleave) {
    owner_collect_interleave_seeds(out, target);
    return;
  }
  if (target != Target::bad_free) return;
  reclaimed_double_free_seeds(out, target);
  owner_collected_double_free_seeds(out, target);
}

}  // namespace spanheap::fuzz::corpus
