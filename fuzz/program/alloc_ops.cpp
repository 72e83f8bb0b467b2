// alloc_ops: the allocation family of operations (allocate, free, refill, check, corrupt) and
// the checks of one live object against the shadow (see execution.hpp).
#include <spanheap/oracle/content.hpp>

#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>

#include "execution.hpp"
#include "recycling_os.hpp"
#include "sanitizers.hpp"
#ifdef SPANHEAP_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace spanheap::fuzz {
namespace {

#ifdef SPANHEAP_FUZZ_ASAN
// True when every shadow byte of the granules that [p, p+len) touches is 0 (all 8 bytes of each
// granule accessible): then no byte of the range is poisoned. Any other value, including a
// partial granule that the range may not even reach, answers false and leaves the exact answer
// to __asan_region_is_poisoned. The ranges checked are at most 512 bytes (oracle/content.hpp's
// sampled regions), and ASan's call per range (its bounds checks, mem_is_zero and the final
// slow scan) cost about as much as the content check itself. Never instrumented: in a build
// where this file has ASan (the replay), a checked load of the shadow would fault.
__attribute__((no_sanitize("address"))) bool shadow_all_clear(const std::byte* p, std::size_t len) {
  static const auto mapping = [] {
    std::size_t scale = 0, offset = 0;
    __asan_get_shadow_mapping(&scale, &offset);
    return std::pair{scale, offset};
  }();
  if (len == 0) return true;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  // Shadow addresses as integers and eight shadow bytes per load: UBSan checks every pointer
  // increment, which byte by byte cost more than the loads.
  const std::uintptr_t first = (a >> mapping.first) + mapping.second;
  const std::uintptr_t end = ((a + len - 1) >> mapping.first) + mapping.second + 1;
  std::uint64_t any = 0;
  std::uintptr_t s = first;
  for (; end - s >= 8; s += 8) {
    std::uint64_t w;
    std::memcpy(&w, reinterpret_cast<const void*>(s), 8);
    any |= w;
  }
  for (; s < end; ++s) any |= *reinterpret_cast<const unsigned char*>(s);
  return any == 0;
}
#endif

// The first byte of [from, from+len) that ASan has poisoned, or nullopt. The oracle is built
// without ASan's instrumentation in the fuzzing presets (fuzz/CMakeLists.txt), so it asks the
// shadow itself before touching a live object: every byte a program may use must be accessible.
std::optional<std::size_t> first_poisoned([[maybe_unused]] const std::byte* p,
                                          [[maybe_unused]] std::size_t from,
                                          [[maybe_unused]] std::size_t len) {
#ifdef SPANHEAP_FUZZ_ASAN
  if (shadow_all_clear(p + from, len)) return std::nullopt;
  if (const void* q = __asan_region_is_poisoned(const_cast<std::byte*>(p) + from, len)) {
    return static_cast<std::size_t>(static_cast<const std::byte*>(q) - p);
  }
#endif
  return std::nullopt;
}

}  // namespace

// Tells the recycling OS layer which of the heap's pages this object may have dirtied, so it
// zeroes those instead of every resident page (RecyclingOsMemory::declare_writes): a small
// object whole (the heap clobbers freed slots, clobber_freed), a large one where the oracle
// wrote (for_each_region; Refill and Corrupt write inside the same regions).
void ProgramExecution::declare_written(const LiveObject& o) {
  static const std::size_t max_small = testing::size_classes().back().size;
  RecyclingOsMemory& os = RecyclingOsMemory::instance();
  if (o.usable <= max_small) {
    os.note_written(o.p, o.usable);
    return;
  }
  oracle::for_each_sampled_region(
      o.size, [&](std::size_t from, std::size_t len) { os.note_written(o.p + from, len); });
}

// Every byte of [from, from+len) of `o` is accessible to its owner (not poisoned by the heap).
bool ProgramExecution::accessible(const LiveObject& o, std::size_t from, std::size_t len) {
  if (const auto bad = first_poisoned(o.p, from, len)) {
    fail(CheckId::live_poisoned, "#{} ({} bytes at {}) is live but ASan poison covers offset {}",
         o.id, o.size, static_cast<void*>(o.p), *bad);
    return false;
  }
  return true;
}

bool ProgramExecution::check_contents(const LiveObject& o, bool full) {
  if (full) {
    bool good = true;
    oracle::for_each_sampled_region(o.size, [&](std::size_t from, std::size_t len) {
      if (!good) return;
      if (!accessible(o, from, len)) {
        good = false;
        return;
      }
      if (auto bad = oracle::find_mismatch(o.p, o.seed, from, len)) {
        fail(CheckId::contents_intact,
             "contents of #{} ({} bytes at {}) changed at offset {}: expected {:#04x}, found "
             "{:#04x}",
             o.id, o.size, static_cast<void*>(o.p), *bad, oracle::pattern_byte(o.seed, *bad),
             static_cast<unsigned>(o.p[*bad]));
        good = false;
      }
    });
    return good;
  }
  const std::size_t n = std::min<std::size_t>(o.size, 8);
  if (!accessible(o, 0, n) || (o.size > 8 && !accessible(o, o.size - 8, 8))) return false;
  auto bad = oracle::find_mismatch(o.p, o.seed, 0, n);
  if (!bad && o.size > 8) bad = oracle::find_mismatch(o.p, o.seed, o.size - 8, 8);
  if (bad) {
    fail(CheckId::contents_intact,
         "contents of #{} ({} bytes at {}) changed at offset {}: expected {:#04x}, found {:#04x}",
         o.id, o.size, static_cast<void*>(o.p), *bad, oracle::pattern_byte(o.seed, *bad),
         static_cast<unsigned>(o.p[*bad]));
    return false;
  }
  return true;
}

// find_object sees a live object_start of the model's usable size, not pending.
bool ProgramExecution::check_found(const LiveObject& o) {
  const PointerInfo info = heap().find_object(o.p);
  if (info.kind != PointerKind::object_start || info.base != o.p || info.pending_free ||
      info.size != o.usable) {
    fail(CheckId::find_object_live,
         "find_object(#{} at {}) = {{kind {}, base {}, size {}, pending {}}}, expected a live "
         "object_start of usable size {}",
         o.id, static_cast<void*>(o.p), kind_name(info.kind), info.base, info.size,
         info.pending_free, o.usable);
    return false;
  }
  return true;
}

bool ProgramExecution::check_object(const LiveObject& o, bool full_contents) {
  if (!check_contents(o, full_contents) || !check_found(o)) return false;
  if (!heap().owns(o.p)) {
    fail(CheckId::owns_live, "owns(#{} at {}) is false", o.id, static_cast<void*>(o.p));
    return false;
  }
  const std::size_t usable = heap().usable_size(o.p);
  if (usable != o.usable) {
    fail(CheckId::usable_size_stable, "usable_size(#{}) changed from {} to {}", o.id, o.usable,
         usable);
    return false;
  }
  return expect_no_reports("usable_size of a live object");
}

bool ProgramExecution::still_pending(const FreedObject& f) {
  const PointerInfo info = heap().find_object(f.p);
  return info.kind == PointerKind::object_start && info.base == f.p && info.pending_free;
}

// Moves every freed object the heap has reclaimed to the shadow's reclaimed list, failing if one
// was reclaimed before ReusePolicy allows.
void ProgramExecution::scan_pending() {
  const FreedObject* early = shadow_.sweep_pending(
      stats().cycles, [&](const FreedObject& f) { return !still_pending(f); });
  if (early == nullptr) return;
  const PointerInfo info = heap().find_object(early->p);
  fail(CheckId::reclaimed_early,
       "#{} (freed at {}) was reclaimed before a cycle passed: find_object = {{kind {}, base {}, "
       "pending {}}}",
       early->id, static_cast<void*>(early->p), kind_name(info.kind), info.base, info.pending_free);
}

void ProgramExecution::exec(const Alloc& op) {
  const std::uint64_t faults_before = fake_ ? fake_->failures() : 0;
  acquiring(op.proc);
  void* p = do_alloc(op.proc, op.size, op.align);
  if (p == nullptr) {
    if (!expect_one_report(ErrorKind::out_of_memory, nullptr, "allocation returned nullptr"))
      return;
    const bool explained = prog_.config.memory_limit_mib != 0 ||
                           (fake_ && (fake_->failures() != faults_before || cap_set_));
    if (!explained) {
      fail(CheckId::oom_unexplained,
           "out_of_memory for allocate({}, {}) with no memory limit and no injected OS failure",
           op.size, op.align);
      return;
    }
    note("nullptr (out_of_memory, as allowed)");
    return;
  }
  if (!expect_no_reports("a successful allocation")) return;
  if (addr(p) % op.align != 0) {
    fail(CheckId::alloc_alignment, "allocate({}, {}) returned {}, not aligned to {}", op.size,
         op.align, p, op.align);
    return;
  }
  const std::size_t usable = heap().usable_size(p);
  if (!expect_no_reports("usable_size of a new object")) return;
  if (usable < op.size || usable == 0) {
    fail(CheckId::alloc_usable_size, "usable_size({}) = {} for a {}-byte request", p, usable,
         op.size);
    return;
  }
  const unsigned cls = testing::size_to_class(op.size, op.align);
  if (cls != 0) {
    auto it = class_table().find(cls);
    if (it == class_table().end() || it->second.size != usable) {
      fail(CheckId::alloc_class_size,
           "allocate({}, {}): size_to_class says class {} ({} bytes) but usable_size is {}",
           op.size, op.align, cls, it == class_table().end() ? 0 : it->second.size, usable);
      return;
    }
  }
  if (!admit(p, usable)) return;
  const std::uint64_t seed = oracle::mix(++next_id_ * 0x2545f4914f6cdd1dull);
  // The span life it joins (for the exact kind of a later double free, shadow.hpp): a span
  // released during this allocation may have been replaced by the one it landed in.
  const std::uint32_t life = shadow_.join_span_life(testing::span_start(heap(), p), cls,
                                                    span_releases_ != span_releases_before_);
  const LiveObject o{
      next_id_ - 1, static_cast<std::byte*>(p), op.size, op.align, usable, seed, op.proc, cls == 0,
      life};
  bool good = true;
  oracle::for_each_sampled_region(o.size, [&](std::size_t from, std::size_t len) {
    good = good && accessible(o, from, len);
    if (good) oracle::write_pattern(o.p, o.seed, from, len);
  });
  if (!good) return;
  declare_written(o);
  shadow_.add_live(o);
  ++allocations_;
  note("#{} at {} (usable {})", o.id, p, usable);
}

// A fresh object at p: the heap owns it and calls it a live object start, and the shadow says
// its slot is not handed out twice (no live object overlaps it; a pending one only when
// ReusePolicy allows, in which case the pending object was reclaimed).
bool ProgramExecution::admit(void* p, std::size_t usable) {
  if (!heap().owns(p)) {
    fail(CheckId::alloc_owns, "owns({}) is false for a fresh object", p);
    return false;
  }
  const PointerInfo info = heap().find_object(p);
  if (info.kind != PointerKind::object_start || info.base != p || info.pending_free) {
    fail(CheckId::alloc_find_object,
         "find_object(new object {}) = {{kind {}, base {}, pending {}}}", p, kind_name(info.kind),
         info.base, info.pending_free);
    return false;
  }
  auto admission = shadow_.check_new(addr(p), usable, stats().cycles);
  // A cycle the allocation itself started (pacing) makes this cycle's frees reusable.
  if (admission.reused_too_early != nullptr && heap().stats().cycles != stats().cycles)
    admission = shadow_.check_new(addr(p), usable, heap().stats().cycles);
  if (const LiveObject* o = admission.overlaps_live) {
    fail(CheckId::alloc_overlap,
         "new object [{}, +{}) overlaps live #{} [{}, +{}): handed out twice", p, usable, o->id,
         static_cast<void*>(o->p), o->usable);
    return false;
  }
  if (const FreedObject* f = admission.reused_too_early) {
    fail(CheckId::alloc_quarantine,
         "new object [{}, +{}) reuses #{}, freed in this cycle (quarantine broken)", p, usable,
         f->id);
    return false;
  }
  return true;
}

void ProgramExecution::exec(const Free& op) {
  if (shadow_.live().empty()) {
    note("no live object: skipped");
    return;
  }
  const std::size_t index = op.pick % shadow_.live().size();
  const LiveObject o = shadow_.live()[index];
  if (!check_contents(o, true)) return;
  acquiring(op.proc);
  do_free(op.proc, o.p);
  if (!expect_no_reports("a valid free")) return;
  const FreedObject& freed = shadow_.free_live(index, heap().stats().cycles);
  ++frees_;
  large_frees_ += o.large ? 1 : 0;
  if (shadow_.policy().reclaimed_at_free(o.large)) {
    // T10: the free returned the span to the page heap (coalesced into a free run).
    const PointerInfo info = heap().find_object(o.p);
    if (info.kind != PointerKind::free_pages) {
      fail(CheckId::large_free_returned,
           "just after free(#{}) of a large object under owner reuse, find_object = {{kind {}, "
           "base {}, pending {}}}, expected free pages (T10)",
           o.id, kind_name(info.kind), info.base, info.pending_free);
      return;
    }
  } else if (!still_pending(freed)) {
    const PointerInfo info = heap().find_object(o.p);
    fail(CheckId::free_pending,
         "just after free(#{}), find_object = {{kind {}, base {}, pending {}}}, expected a "
         "pending object_start",
         o.id, kind_name(info.kind), info.base, info.pending_free);
    return;
  }
  note("freed #{} ({} bytes, allocated by {})", o.id, o.size,
       o.owner == via_heap ? std::string("heap") : fmt::format("P{}", o.owner));
}

void ProgramExecution::exec(const Refill& op) {
  LiveObject* o = pick_live(op.pick);
  if (o == nullptr) return note("no live object: skipped");
  if (!check_contents(*o, true)) return;
  o->seed = oracle::mix(o->seed);
  oracle::for_each_sampled_region(o->size, [&](std::size_t from, std::size_t len) {
    oracle::write_pattern(o->p, o->seed, from, len);
  });
  note("#{}", o->id);
}

void ProgramExecution::exec(const Check& op) {
  LiveObject* o = pick_live(op.pick);
  if (o == nullptr) return note("no live object: skipped");
  check_object(*o, true);
  note("#{} ok", o->id);
}

void ProgramExecution::exec(const Corrupt& op) {
  LiveObject* o = pick_live(op.pick);
  if (o == nullptr || o->size == 0) return note("nothing to corrupt: skipped");
  if (!accessible(*o, o->size - 1, 1)) return;
  o->p[o->size - 1] ^= std::byte{0x5a};
  note("flipped bits in the last byte of #{}", o->id);
}

}  // namespace spanheap::fuzz
