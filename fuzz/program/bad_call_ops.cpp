// bad_call_ops: the bad calls (bad allocations, and frees of pointers that are not a live
// object's start) — each must make exactly the predicted report and change nothing else
// (DESIGN §4; docs/fuzzing.md lists which bad frees are always detected). See execution.hpp.
#include <algorithm>
#include <bit>

#include "execution.hpp"
#include "recycling_os.hpp"

namespace spanheap::fuzz {
namespace {

// A buffer no heap owns, for foreign frees.
alignas(64) std::byte foreign_buffer[256];

}  // namespace

void ProgramExecution::exec(const BadAlloc& op) {
  const Stats before = heap().stats();
  void* p = do_alloc(op.proc, op.size, op.align);
  const bool bad_align = !std::has_single_bit(op.align) || op.align > max_alloc_size;
  const ErrorKind want = bad_align ? ErrorKind::bad_alignment : ErrorKind::size_overflow;
  if (p != nullptr) {
    fail(CheckId::bad_alloc_returned,
         "allocate(size={:#x}, align={}) returned {} instead of nullptr", op.size, op.align, p);
    return;
  }
  if (!expect_one_report(want, nullptr, "bad allocation")) return;
  unchanged(before, "a bad allocation");
  note("nullptr + {}", to_string(want));
}

// Runs the bad call the program chose and checks that it made exactly the predicted report and
// changed nothing else.
void ProgramExecution::exec(const BadFree& op) {
  const Stats before = heap().stats();
  const std::optional<BadCall> call = pick_bad_call(op);
  if (!call || !out_.ok) return;
  if (!expect_no_reports("setting up a bad free")) return;
  ErrorKind want = call->want;
  if (call->usable_call) {
    const std::size_t n = heap().usable_size(call->ptr);
    if (n != 0) {
      fail(CheckId::interior_usable_size,
           "usable_size({}) of an interior pointer returned {}, expected 0", call->ptr, n);
      return;
    }
  } else {
    do_free(op.proc, call->ptr);
  }
  if (call->or_kind && rec_.count() == 1 && rec_.count(*call->or_kind) == 1) want = *call->or_kind;
  if (!expect_one_report(want, call->ptr, call->usable_call ? "usable_size(interior)" : "bad free"))
    return;
  if (!unchanged(before, "a bad free")) return;
  if (op.kind == BadKind::other_heap) {
    other_->proc(0).free(other_obj_);
    if (!other_rec_.take().empty()) {
      fail(CheckId::other_heap_free, "the second heap reported an error freeing its own object");
      return;
    }
  }
  // A rejected call that swept or flushed changed the heap's structures: verify now. One that
  // did neither is covered by the next boundary's verify (the heap is marked dirty).
  if (structure_changed(before)) verify("after a bad free that swept or flushed");
}

// The pointer a BadFree operation passes and the report it must make; nullopt when the program
// state offers no such pointer (noted in the trace) or the setup itself failed (fail() called).
std::optional<ProgramExecution::BadCall> ProgramExecution::pick_bad_call(const BadFree& op) {
  switch (op.kind) {
    case BadKind::interior:
    case BadKind::usable_interior: {
      LiveObject* o = pick_live(op.pick);
      if (o == nullptr || o->usable < 2) return skip("no live object of 2+ bytes: skipped");
      BadCall call{o->p + 1 + op.offset % (o->usable - 1)};
      call.usable_call = op.kind == BadKind::usable_interior;
      // free() of an interior pointer is interior_free; usable_size() of one is API misuse
      // (usable_size is only defined on an object's start).
      call.want = call.usable_call ? ErrorKind::misuse : ErrorKind::interior_free;
      note("#{} + {}", o->id, static_cast<std::byte*>(call.ptr) - o->p);
      return call;
    }
    case BadKind::double_pending: {
      const auto& pending = shadow_.pending();
      if (pending.empty()) return skip("nothing pending: skipped");
      const FreedObject& f = pending[op.pick % pending.size()];
      if (!still_pending(f)) {
        note("#{} already reclaimed: skipped", f.id);
        return std::nullopt;
      }
      note("#{} again", f.id);
      return BadCall{f.p, ErrorKind::double_free};
    }
    case BadKind::double_reclaimed:
      return pick_reclaimed(op);
    case BadKind::pending_interior:
    case BadKind::reclaimed_interior:
      return pick_freed_interior(op);
    case BadKind::foreign: {
      void* bad = foreign_buffer + op.offset % sizeof foreign_buffer;
      if (heap().owns(bad) || heap().find_object(bad).kind != PointerKind::foreign) {
        fail(CheckId::foreign_claimed,
             "a static buffer at {} is claimed by the heap (owns or find_object)", bad);
        return std::nullopt;
      }
      return BadCall{bad, ErrorKind::foreign_free};
    }
    case BadKind::other_heap:
      return pick_other_heap(op);
    case BadKind::span_tail:
      return pick_span_tail(op);
  }
  return std::nullopt;
}

// A second free of an object whose slot the heap has reclaimed (and not handed out again).
std::optional<ProgramExecution::BadCall> ProgramExecution::pick_reclaimed(const BadFree& op) {
  scan_pending();  // objects collected since the last boundary (owner reuse) count as reclaimed
  if (!out_.ok) return std::nullopt;
  const auto& reclaimed = shadow_.reclaimed();
  if (reclaimed.empty()) return skip("nothing reclaimed: skipped");
  const FreedObject& f = reclaimed[op.pick % reclaimed.size()];
  // If the slot was handed out again this is a valid free of someone else: not a bad call,
  // and outside the guarantee (docs/design.md §"Bad input": detected only in quarantine).
  if (shadow_.live_overlap(addr(f.p), std::max<std::size_t>(f.usable, 1)) != nullptr) {
    note("#{}'s memory is live again: skipped", f.id);
    return std::nullopt;
  }
  const PointerInfo info = heap().find_object(f.p);
  // Free pages that held the object: the heap's page history says "freed", so it must say
  // double_free. A free slot at the object's start: double_free while the span that reclaimed
  // it is still there (its reclaimed bit), which the model knows when that span held a live
  // object whenever a span was released (shadow.hpp, span lives). Otherwise the span may have
  // gone back to the page heap and a new span of the same class taken the pages: the new span
  // never allocated that slot (invalid_free) unless an object of its own was reclaimed there
  // (double_free), which only its reclaimed bits record — the one place the model accepts either.
  BadCall call{f.p, ErrorKind::double_free};
  if (info.kind == PointerKind::free_slot && info.base == f.p) {
    if (!shadow_.span_life_intact(f)) call.or_kind = ErrorKind::invalid_free;
  } else if (info.kind != PointerKind::free_pages) {
    note("#{}'s pages were reused ({}): skipped", f.id, kind_name(info.kind));
    return std::nullopt;
  }
  note("#{} again, after its slot was reclaimed ({}{})", f.id, kind_name(info.kind),
       call.or_kind ? ", its span may be new" : "");
  return call;
}

// A pointer inside a freed object (pending or reclaimed), not at its start. Whether the heap
// calls it interior_free (the slot is still allocated: its free is pending), invalid_free (the
// slot is free) or double_free (its pages went back to the page heap) depends on whether the free
// sweeps the span first, which the model knows: a pending object freed before the current cycle is
// reclaimed by the free's own on-demand sweep (ensure_swept), which must keep the span even when
// it empties it (the pointer is judged against the span's slots, docs/design.md "The free and
// sweep path").
std::optional<ProgramExecution::BadCall> ProgramExecution::pick_freed_interior(const BadFree& op) {
  scan_pending();
  if (!out_.ok) return std::nullopt;
  const bool pending = op.kind == BadKind::pending_interior;
  const auto& from = pending ? shadow_.pending() : shadow_.reclaimed();
  if (from.empty())
    return skip(pending ? "nothing pending: skipped" : "nothing reclaimed: skipped");
  const FreedObject& f = from[op.pick % from.size()];
  if (f.usable < 2) return skip("a 1-byte object has no interior: skipped");
  std::byte* q = f.p + 1 + op.offset % (f.usable - 1);
  if (shadow_.live_overlap(addr(q), 1) != nullptr) {
    note("#{}'s memory is live again: skipped", f.id);
    return std::nullopt;
  }
  const PointerInfo info = heap().find_object(q);
  BadCall call{q, ErrorKind::invalid_free};
  if (info.kind == PointerKind::free_pages) {
    call.want = ErrorKind::double_free;  // the pages held f: their history says freed
  } else if (info.kind == PointerKind::interior && info.pending_free) {
    // The slot holds a pending object (f, or an object allocated there since and freed).
    const FreedObject* owner = shadow_.pending_at(info.base);
    if (owner == nullptr) return skip("pending in the heap, not in the model: skipped");
    if (owner->freed_in_cycle == stats().cycles) {
      call.want = ErrorKind::interior_free;  // its span is swept for this cycle: no sweep first
    } else if (owner->large) {
      call.want = ErrorKind::double_free;  // the free's sweep releases a large span
    }
  } else if (!(info.kind == PointerKind::free_slot && info.base != q) &&
             info.kind != PointerKind::span_tail) {
    // A slot start of a span laid out differently since: its answer is that span's history.
    note("#{}'s pages were reused ({}): skipped", f.id, kind_name(info.kind));
    return std::nullopt;
  }
  // A stale P flushes at acquire, and that flush releases a span it empties (a free's own sweep
  // keeps it): whether this P caches the span is the heap's business, so either kind is right.
  // Through the facade that P is facade_proc (acquiring).
  const unsigned proc = op.proc == via_heap ? facade_proc : op.proc;
  if (call.want == ErrorKind::invalid_free &&
      (!stale_known_ || (proc < stale_.size() && stale_[proc]))) {
    call.or_kind = ErrorKind::double_free;
  }
  note("#{} + {} ({}{})", f.id, q - f.p, kind_name(info.kind),
       info.pending_free ? ", pending" : "");
  return call;
}

// An object of a second heap, freed through this one.
std::optional<ProgramExecution::BadCall> ProgramExecution::pick_other_heap(const BadFree& op) {
  if (!other_) {
    Options o = options_;
    o.procs = 1;
    // Recycled arenas like the main heap's, without its injected failures: a fresh mapping per
    // execution, and the page faults of touching it, were a third of a bad_free execution.
    o.os = &RecyclingOsMemory::instance();
    o.memory_limit = 0;
    o.error_handler = other_rec_.handler();
    other_.emplace(o);
  }
  // Through a Proc handle, which leaves the thread's affinity alone: a facade call on the second
  // heap would make it this thread's last heap, and the main heap's next facade call would find
  // its P still bound to this thread (a thread's binding outlives its switch to another heap) and
  // take another, where the model expects facade_proc.
  other_obj_ = other_->proc(0).allocate(16 + op.offset % 256);
  if (other_obj_ == nullptr) {
    fail(CheckId::other_heap_alloc, "the second heap could not allocate");
    return std::nullopt;
  }
  // The heap clobbers the whole slot when it is freed: the recycling layer must zero it.
  RecyclingOsMemory::instance().note_written(other_obj_, other_->usable_size(other_obj_));
  const PointerInfo info = heap().find_object(other_obj_);
  if (info.kind != PointerKind::other_heap) {
    fail(CheckId::other_heap_kind, "find_object(object of another heap) = {}, expected other_heap",
         kind_name(info.kind));
    return std::nullopt;
  }
  return BadCall{other_obj_, ErrorKind::misuse};
}

// A pointer into the tail of a live object's span, past its last slot.
std::optional<ProgramExecution::BadCall> ProgramExecution::pick_span_tail(const BadFree& op) {
  LiveObject* o = pick_live(op.pick);
  if (o == nullptr) return skip("no live object: skipped");
  void* bad = nullptr;
  const testing::HeapSnapshot snap = testing::snapshot(heap());
  for (const auto& s : snap.spans) {
    if (!s.in_use || addr(o->p) < s.base || addr(o->p) >= s.base + s.npages * page_size) continue;
    const std::size_t used = std::size_t{s.nelems} * s.elem_size;
    if (s.span_class == 0 || used >= s.npages * page_size) break;
    bad = reinterpret_cast<void*>(s.base + used + op.offset % (s.npages * page_size - used));
    break;
  }
  if (bad == nullptr) {
    note("#{}'s span has no tail: skipped", o->id);
    return std::nullopt;
  }
  if (heap().find_object(bad).kind != PointerKind::span_tail) {
    fail(CheckId::span_tail_kind,
         "find_object({}) in the tail of #{}'s span = {}, expected span_tail", bad, o->id,
         kind_name(heap().find_object(bad).kind));
    return std::nullopt;
  }
  note("{} in the tail of #{}'s span", bad, o->id);
  return BadCall{bad, ErrorKind::invalid_free};
}

}  // namespace spanheap::fuzz
