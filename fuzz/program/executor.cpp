// The executor and the shadow-model oracle (executor.hpp lists what is checked and why).
#include "executor.hpp"

#include <fmt/format.h>
#include <spanheap/testing.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <type_traits>
#include <vector>

#include "recycling_os.hpp"
#include "sanitizers.hpp"
#ifdef SPANHEAP_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace spanheap::fuzz {
namespace {

// --- content patterns ---------------------------------------------------------------------------
// Word i of an object with seed s is s ^ (i * golden) and byte o is byte (o % 8) of word o / 8:
// one multiply per word, position-dependent (a shifted or swapped copy does not match), and
// distinct per object (seeds come from mix()). Objects up to 512 bytes are written and checked
// whole; larger ones in sampled regions (the first and last 256 bytes and one word every 64 KiB,
// at most 16 of them), so an 8 KiB object costs 64 words, a 64 MiB one 80, and writing a fresh
// large object faults in a few of its pages, not all of them. A slot the heap reclaims too early is
// clobbered whole (debug.clobber_freed) or handed out again (the overlap check), so samples at
// both ends and across the middle see it; docs/fuzzing.md "The oracle" has the reasoning.

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ull;

std::uint64_t pattern_word(std::uint64_t seed, std::size_t i) { return seed ^ (i * golden); }

std::uint8_t pattern_byte(std::uint64_t seed, std::size_t o) {
  return static_cast<std::uint8_t>(pattern_word(seed, o / 8) >> (8 * (o % 8)));
}

template <class Fn>
void for_each_region(std::size_t size, Fn&& fn) {
  constexpr std::size_t whole = 512, edge = 256, min_stride = 65536, max_samples = 16;
  if (size <= whole) {
    fn(0, size);
    return;
  }
  const std::size_t stride = std::max(min_stride, (size / max_samples + 7) & ~std::size_t{7});
  fn(0, edge);
  for (std::size_t o = stride; o + 8 <= size - edge; o += stride) fn(o, 8);
  fn(size - edge, edge);
}

void write_range(std::byte* p, std::uint64_t seed, std::size_t from, std::size_t len) {
  std::size_t o = from;
  const std::size_t end = from + len;
  for (; o < end && o % 8 != 0; ++o) p[o] = std::byte{pattern_byte(seed, o)};
  for (; o + 8 <= end; o += 8) {
    const std::uint64_t w = pattern_word(seed, o / 8);
    std::memcpy(p + o, &w, 8);  // little-endian: byte k of w is pattern_byte(seed, o + k)
  }
  for (; o < end; ++o) p[o] = std::byte{pattern_byte(seed, o)};
}

// Returns the first offset in [from, from+len) that does not hold the pattern, or nullopt.
// Word-wise: one load and compare per aligned word; bytes only at unaligned ends.
std::optional<std::size_t> check_range(const std::byte* p, std::uint64_t seed, std::size_t from,
                                       std::size_t len) {
  std::size_t o = from;
  const std::size_t end = from + len;
  for (; o < end && o % 8 != 0; ++o) {
    if (p[o] != std::byte{pattern_byte(seed, o)}) return o;
  }
  std::uint64_t diff = 0;
  const std::size_t words_from = o;
  for (; o + 8 <= end; o += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + o, 8);
    diff |= w ^ pattern_word(seed, o / 8);
  }
  if (diff != 0) {  // rare: find the first differing byte
    for (std::size_t b = words_from; b < o; ++b) {
      if (p[b] != std::byte{pattern_byte(seed, b)}) return b;
    }
  }
  for (; o < end; ++o) {
    if (p[o] != std::byte{pattern_byte(seed, o)}) return o;
  }
  return std::nullopt;
}

// The first byte of [from, from+len) that ASan has poisoned, or nullopt. The oracle is built
// without ASan's instrumentation in the fuzzing presets (fuzz/CMakeLists.txt), so it asks the
// shadow itself before touching a live object: every byte a program may use must be accessible.
std::optional<std::size_t> first_poisoned([[maybe_unused]] const std::byte* p,
                                          [[maybe_unused]] std::size_t from,
                                          [[maybe_unused]] std::size_t len) {
#ifdef SPANHEAP_FUZZ_ASAN
  if (const void* q = __asan_region_is_poisoned(const_cast<std::byte*>(p) + from, len)) {
    return static_cast<std::size_t>(static_cast<const std::byte*>(q) - p);
  }
#endif
  return std::nullopt;
}

// --- shadow model ---------------------------------------------------------------------------

struct Object {
  std::uint64_t id;  // allocation ordinal, "#id" in traces
  std::byte* p;
  std::size_t size;
  std::size_t align;
  std::size_t usable;
  std::uint64_t seed;
  unsigned proc;
};

struct Freed {
  std::uint64_t id;
  std::byte* p;
  std::size_t size;
  std::size_t usable;
  std::uint64_t cycle;  // stats().cycles when it was freed
};

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

const char* kind_name(PointerKind k) {
  switch (k) {
    case PointerKind::foreign:
      return "foreign";
    case PointerKind::other_heap:
      return "other_heap";
    case PointerKind::free_pages:
      return "free_pages";
    case PointerKind::span_tail:
      return "span_tail";
    case PointerKind::free_slot:
      return "free_slot";
    case PointerKind::interior:
      return "interior";
    case PointerKind::object_start:
      return "object_start";
  }
  return "?";
}

const std::map<unsigned, testing::SizeClassInfo>& class_table() {
  static const std::map<unsigned, testing::SizeClassInfo> table = [] {
    std::map<unsigned, testing::SizeClassInfo> t;
    for (const auto& c : testing::size_classes()) t.emplace(c.span_class, c);
    return t;
  }();
  return table;
}

// Live objects whose ends are checked after every step, round robin (boundary checks cover all).
constexpr unsigned rotating_checks = 2;

// A buffer no heap owns, for foreign frees.
alignas(64) std::byte foreign_buffer[256];

// --- the runner -----------------------------------------------------------------------------

class Runner {
 public:
  Runner(const Program& program, const RunOptions& options)
      : prog_(program),
        opts_(options),
        explicit_procs_(program.target == Target::procs_interleave) {
    // At most one object per operation: no reallocation while the program runs (each one is an
    // ASan malloc with a stack trace, in every execution).
    live_.reserve(program.ops.size());
    ranges_.reserve(program.ops.size());
    pending_.reserve(program.ops.size());
  }

  Outcome run() {
    if (!has_heap(prog_.target)) {
      for (step_ = 0; step_ < prog_.ops.size() && out_.ok; ++step_) {
        line_.clear();
        if (const auto* q = std::get_if<SizeQuery>(&prog_.ops[step_])) size_query(*q);
        if (const auto* q = std::get_if<PacingQuery>(&prog_.ops[step_])) pacing_query(*q);
        if (opts_.trace) {
          fmt::format_to(std::back_inserter(out_.trace), "  {:4}  {}{}{}\n", step_,
                         describe(prog_.ops[step_]), line_.empty() ? "" : "  -> ", line_);
        }
        out_.ops_run = step_ + 1;
      }
      return std::move(out_);
    }
    make_heap();
    for (step_ = 0; step_ < prog_.ops.size() && out_.ok; ++step_) {
      line_.clear();
      expected_lazy_flushes_ = 0;
      const Op& op = prog_.ops[step_];
      // Operations that only read the heap, or only write inside a live object, leave the last
      // verify() standing.
      if (!op_is<Verify>(op) && !op_is<Check>(op) && !op_is<Refill>(op) && !op_is<Corrupt>(op)) {
        dirty_ = true;
      }
      std::visit([this](const auto& o) { exec(o); }, op);
      if (out_.ok) after_step(prog_.ops[step_]);
      if (opts_.trace) {
        fmt::format_to(std::back_inserter(out_.trace), "  {:4}  {}{}{}\n", step_,
                       describe(prog_.ops[step_]), line_.empty() ? "" : "  -> ", line_);
      }
      out_.ops_run = step_ + 1;
    }
    if (out_.ok) finish();
    return std::move(out_);
  }

 private:
  // ---- failure plumbing ----
  template <class... Args>
  void fail(fmt::format_string<Args...> f, Args&&... args) {
    if (!out_.ok) return;
    out_.ok = false;
    out_.step = step_;
    out_.failure = fmt::format(f, std::forward<Args>(args)...);
  }
  template <class... Args>
  void note(fmt::format_string<Args...> f, Args&&... args) {
    if (opts_.trace) fmt::format_to(std::back_inserter(line_), f, std::forward<Args>(args)...);
  }

  void make_heap() {
    const HeapConfig& c = prog_.config;
    Options o;
    o.procs = c.procs;
    o.sweepers = 0;
    o.flush = c.flush;
    // The shadow model predicts reuse by the quarantine rule (a freed slot comes back only after
    // its span's sweep); ReusePolicy::owner's earlier reuse is covered by the unit tests, the
    // reuse property and the stress drivers (docs/design.md "Reuse").
    o.reuse = ReusePolicy::next_cycle;
    o.gc_percent = c.gc_percent;
    o.memory_limit = std::size_t{c.memory_limit_mib} << 20;
    o.error_handler = rec_.handler();
    // The debug tier (protocol preconditions on every path); the expensive tier would add a
    // whole-heap census inside every cycle, which the explicit verify() at each boundary
    // replaces (docs/fuzzing.md "The oracle").
    o.checks = CheckLevel::debug;
    o.debug.clobber_freed = true;
#ifdef SPANHEAP_FUZZ_ASAN
    o.debug.poison_freed = true;
#endif
    o.arena_bytes = std::size_t{c.arena_mib} << 20;
    // Small arenas and small commit chunks (16 pages, not 64): growth, arena ends and coalescing
    // with fresh runs come sooner, and less is committed, poisoned and recycled per execution
    // (page_heap: 1.06x the executions, cov +2 in a same-seed run).
    o.commit_bytes = std::size_t{128} << 10;
    RecyclingOsMemory::instance().declare_writes(true);  // declare_written() below
    if (c.fake_os) {
      fake_.emplace(RecyclingOsMemory::instance());  // failures injected over recycled arenas
      o.os = &*fake_;
    } else {
      o.os = &RecyclingOsMemory::instance();  // arenas reused between executions
    }
    options_ = o;
    heap_.emplace(o);
    stats_ = heap_->stats();
    stale_.fill(false);
  }

  Heap& heap() { return *heap_; }

  void* do_alloc(unsigned proc, std::size_t size, std::size_t align) {
    return proc == via_heap ? heap().allocate(size, align)
                            : heap().proc(proc).allocate(size, align);
  }
  void do_free(unsigned proc, void* p) {
    if (proc == via_heap) {
      heap().free(p);
    } else {
      heap().proc(proc).free(p);
    }
  }

  // ---- errors ----
  bool expect_no_reports(const char* what) {
    auto reports = rec_.take();
    if (!reports.empty()) {
      fail("unexpected error report during {}: {} (kind {}), {} report(s) in total", what,
           reports.front().message, to_string(reports.front().kind), reports.size());
      return false;
    }
    return true;
  }
  bool expect_one_report(ErrorKind kind, const void* ptr, const char* what) {
    auto reports = rec_.take();
    if (reports.size() != 1) {
      fail("{}: expected exactly one {} report, got {}{}{}", what, to_string(kind), reports.size(),
           reports.empty() ? "" : ": first is ",
           reports.empty() ? std::string() : reports.front().message);
      return false;
    }
    if (reports[0].kind != kind) {
      fail("{}: expected error kind {}, heap reported {}: {}", what, to_string(kind),
           to_string(reports[0].kind), reports[0].message);
      return false;
    }
    if (ptr != nullptr && reports[0].ptr != ptr) {
      fail("{}: report names ptr {} but the bad pointer was {}: {}", what, reports[0].ptr, ptr,
           reports[0].message);
      return false;
    }
    return true;
  }

  // ---- the model's view of one object ----
  // Tells the recycling OS layer which of the heap's pages this object may have dirtied, so it
  // zeroes those instead of every resident page (RecyclingOsMemory::declare_writes): a small
  // object whole (the heap clobbers freed slots, clobber_freed), a large one where the oracle
  // wrote (for_each_region; Refill and Corrupt write inside the same regions).
  void declare_written(const Object& o) {
    static const std::size_t max_small = testing::size_classes().back().size;
    RecyclingOsMemory& os = RecyclingOsMemory::instance();
    if (o.usable <= max_small) {
      os.note_written(o.p, o.usable);
      return;
    }
    for_each_region(o.size,
                    [&](std::size_t from, std::size_t len) { os.note_written(o.p + from, len); });
  }

  // Every byte of [from, from+len) of `o` is accessible to its owner (not poisoned by the heap).
  bool accessible(const Object& o, std::size_t from, std::size_t len) {
    if (const auto bad = first_poisoned(o.p, from, len)) {
      fail("#{} ({} bytes at {}) is live but ASan poison covers offset {}", o.id, o.size,
           static_cast<void*>(o.p), *bad);
      return false;
    }
    return true;
  }

  bool check_contents(const Object& o, bool full) {
    if (full) {
      bool good = true;
      for_each_region(o.size, [&](std::size_t from, std::size_t len) {
        if (!good) return;
        if (!accessible(o, from, len)) {
          good = false;
          return;
        }
        if (auto bad = check_range(o.p, o.seed, from, len)) {
          fail(
              "contents of #{} ({} bytes at {}) changed at offset {}: expected {:#04x}, found "
              "{:#04x}",
              o.id, o.size, static_cast<void*>(o.p), *bad, pattern_byte(o.seed, *bad),
              static_cast<unsigned>(o.p[*bad]));
          good = false;
        }
      });
      return good;
    }
    const std::size_t n = std::min<std::size_t>(o.size, 8);
    if (!accessible(o, 0, n) || (o.size > 8 && !accessible(o, o.size - 8, 8))) return false;
    auto bad = check_range(o.p, o.seed, 0, n);
    if (!bad && o.size > 8) bad = check_range(o.p, o.seed, o.size - 8, 8);
    if (bad) {
      fail("contents of #{} ({} bytes at {}) changed at offset {}: expected {:#04x}, found {:#04x}",
           o.id, o.size, static_cast<void*>(o.p), *bad, pattern_byte(o.seed, *bad),
           static_cast<unsigned>(o.p[*bad]));
      return false;
    }
    return true;
  }

  // find_object sees a live object_start of the model's usable size, not pending.
  bool check_found(const Object& o) {
    const PointerInfo info = heap().find_object(o.p);
    if (info.kind != PointerKind::object_start || info.base != o.p || info.pending_free ||
        info.size != o.usable) {
      fail(
          "find_object(#{} at {}) = {{kind {}, base {}, size {}, pending {}}}, expected a live "
          "object_start of usable size {}",
          o.id, static_cast<void*>(o.p), kind_name(info.kind), info.base, info.size,
          info.pending_free, o.usable);
      return false;
    }
    return true;
  }

  bool check_object(const Object& o, bool full_contents) {
    if (!check_contents(o, full_contents) || !check_found(o)) return false;
    if (!heap().owns(o.p)) {
      fail("owns(#{} at {}) is false", o.id, static_cast<void*>(o.p));
      return false;
    }
    const std::size_t usable = heap().usable_size(o.p);
    if (usable != o.usable) {
      fail("usable_size(#{}) changed from {} to {}", o.id, o.usable, usable);
      return false;
    }
    return expect_no_reports("usable_size of a live object");
  }

  Object* pick_live(unsigned pick) { return live_.empty() ? nullptr : &live_[pick % live_.size()]; }

  // ---- pending frees ----
  bool still_pending(const Freed& f) {
    const PointerInfo info = heap().find_object(f.p);
    return info.kind == PointerKind::object_start && info.base == f.p && info.pending_free;
  }

  // Moves every freed object the heap has reclaimed from pending_ to reclaimed_, failing if one
  // was reclaimed before a cycle passed.
  void scan_pending() {
    std::vector<Freed> keep;
    keep.reserve(pending_.size());
    for (const Freed& f : pending_) {
      if (still_pending(f)) {
        keep.push_back(f);
        continue;
      }
      if (f.cycle == stats_.cycles) {
        const PointerInfo info = heap().find_object(f.p);
        fail(
            "#{} (freed at {}) was reclaimed before a cycle passed: find_object = {{kind {}, "
            "base {}, pending {}}}",
            f.id, static_cast<void*>(f.p), kind_name(info.kind), info.base, info.pending_free);
        return;
      }
      remember_reclaimed(f);
    }
    pending_ = std::move(keep);
  }

  void remember_reclaimed(const Freed& f) {
    reclaimed_.push_back(f);
    if (reclaimed_.size() > 64) reclaimed_.erase(reclaimed_.begin());
  }

  // ---- address-range bookkeeping (overlap checks) ----
  // Returns the live object overlapping [p, p + n), if any.
  const Object* live_overlap(std::uintptr_t p, std::size_t n) {
    // First range starting after our last byte; the one before it is the only candidate.
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), p + n - 1,
                               [](std::uintptr_t a, const Range& r) { return a < r.begin; });
    if (it == ranges_.begin()) return nullptr;
    --it;
    if (it->end > p) return find_live_by_id(it->id);
    return nullptr;
  }
  void add_range(const Object& o) {
    const Range r{addr(o.p), addr(o.p) + std::max<std::size_t>(o.usable, 1), o.id};
    ranges_.insert(std::upper_bound(ranges_.begin(), ranges_.end(), r.begin,
                                    [](std::uintptr_t a, const Range& x) { return a < x.begin; }),
                   r);
  }
  void remove_range(const void* p) {
    auto it = std::lower_bound(ranges_.begin(), ranges_.end(), addr(p),
                               [](const Range& x, std::uintptr_t a) { return x.begin < a; });
    if (it != ranges_.end() && it->begin == addr(p)) ranges_.erase(it);
  }
  Object* find_live_by_id(std::uint64_t id) {
    for (Object& o : live_) {
      if (o.id == id) return &o;
    }
    return nullptr;
  }

  // ---- operations ----
  void exec(const Alloc& op) {
    const std::uint64_t faults_before = fake_ ? fake_->failures() : 0;
    acquiring(op.proc);
    void* p = do_alloc(op.proc, op.size, op.align);
    if (p == nullptr) {
      if (!expect_one_report(ErrorKind::out_of_memory, nullptr, "allocation returned nullptr"))
        return;
      const bool explained = prog_.config.memory_limit_mib != 0 ||
                             (fake_ && (fake_->failures() != faults_before || cap_set_));
      if (!explained) {
        fail("out_of_memory for allocate({}, {}) with no memory limit and no injected OS failure",
             op.size, op.align);
        return;
      }
      note("nullptr (out_of_memory, as allowed)");
      return;
    }
    if (!expect_no_reports("a successful allocation")) return;
    auto* bp = static_cast<std::byte*>(p);
    if (addr(p) % op.align != 0) {
      fail("allocate({}, {}) returned {}, not aligned to {}", op.size, op.align, p, op.align);
      return;
    }
    const std::size_t usable = heap().usable_size(p);
    if (!expect_no_reports("usable_size of a new object")) return;
    if (usable < op.size || usable == 0) {
      fail("usable_size({}) = {} for a {}-byte request", p, usable, op.size);
      return;
    }
    const unsigned cls = testing::size_to_class(op.size, op.align);
    if (cls != 0) {
      auto it = class_table().find(cls);
      if (it == class_table().end() || it->second.size != usable) {
        fail("allocate({}, {}): size_to_class says class {} ({} bytes) but usable_size is {}",
             op.size, op.align, cls, it == class_table().end() ? 0 : it->second.size, usable);
        return;
      }
    }
    if (!heap().owns(p)) {
      fail("owns({}) is false for a fresh object", p);
      return;
    }
    if (const Object* o = live_overlap(addr(p), usable)) {
      fail("new object [{}, +{}) overlaps live #{} [{}, +{}): handed out twice", p, usable, o->id,
           static_cast<void*>(o->p), o->usable);
      return;
    }
    // A freed object may be reused only after a cycle; if it was, it has been reclaimed.
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      const Freed& f = pending_[i];
      if (addr(f.p) < addr(p) + usable &&
          addr(p) < addr(f.p) + std::max<std::size_t>(f.usable, 1)) {
        if (f.cycle == stats_.cycles && heap().stats().cycles == stats_.cycles) {
          fail("new object [{}, +{}) reuses #{}, freed in this cycle (quarantine broken)", p,
               usable, f.id);
          return;
        }
        remember_reclaimed(f);
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
        --i;
      }
    }
    Object o{next_id_++, bp, op.size, op.align, usable, mix(next_id_ * 0x2545f4914f6cdd1dull),
             op.proc};
    bool good = true;
    for_each_region(o.size, [&](std::size_t from, std::size_t len) {
      good = good && accessible(o, from, len);
      if (good) write_range(o.p, o.seed, from, len);
    });
    if (!good) return;
    declare_written(o);
    const PointerInfo info = heap().find_object(p);
    if (info.kind != PointerKind::object_start || info.base != p || info.pending_free) {
      fail("find_object(new object {}) = {{kind {}, base {}, pending {}}}", p, kind_name(info.kind),
           info.base, info.pending_free);
      return;
    }
    add_range(o);
    live_.push_back(o);
    ++allocations_;
    note("#{} at {} (usable {})", o.id, p, usable);
  }

  void release_live(std::size_t index) {
    remove_range(live_[index].p);
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(index));
  }

  void exec(const Free& op) {
    if (live_.empty()) {
      note("no live object: skipped");
      return;
    }
    const std::size_t index = op.pick % live_.size();
    const Object o = live_[index];
    if (!check_contents(o, true)) return;
    acquiring(op.proc);
    do_free(op.proc, o.p);
    if (!expect_no_reports("a valid free")) return;
    release_live(index);
    const std::uint64_t cycles = heap().stats().cycles;
    pending_.push_back(Freed{o.id, o.p, o.size, o.usable, cycles});
    ++frees_;
    if (!still_pending(pending_.back())) {
      const PointerInfo info = heap().find_object(o.p);
      fail(
          "just after free(#{}), find_object = {{kind {}, base {}, pending {}}}, expected a "
          "pending object_start",
          o.id, kind_name(info.kind), info.base, info.pending_free);
      return;
    }
    note("freed #{} ({} bytes, allocated by {})", o.id, o.size,
         o.proc == via_heap ? std::string("heap") : fmt::format("P{}", o.proc));
  }

  void exec(const Refill& op) {
    Object* o = pick_live(op.pick);
    if (o == nullptr) return note("no live object: skipped");
    if (!check_contents(*o, true)) return;
    o->seed = mix(o->seed);
    for_each_region(
        o->size, [&](std::size_t from, std::size_t len) { write_range(o->p, o->seed, from, len); });
    note("#{}", o->id);
  }

  void exec(const Check& op) {
    Object* o = pick_live(op.pick);
    if (o == nullptr) return note("no live object: skipped");
    check_object(*o, true);
    note("#{} ok", o->id);
  }

  void exec(const Corrupt& op) {
    Object* o = pick_live(op.pick);
    if (o == nullptr || o->size == 0) return note("nothing to corrupt: skipped");
    if (!accessible(*o, o->size - 1, 1)) return;
    o->p[o->size - 1] ^= std::byte{0x5a};
    note("flipped bits in the last byte of #{}", o->id);
  }

  void exec(const Collect&) {
    // Objects freed in this cycle must still be pending when it ends (after the cycle, the
    // cycle count no longer tells them apart). after_step() then runs the boundary check.
    scan_pending();
    if (!out_.ok) return;
    heap().collect();
    cycle_done();
    if (!expect_no_reports("collect()")) return;
    stale_.fill(false);
    stale_known_ = true;
  }

  void exec(const BeginCycle&) {
    scan_pending();
    if (!out_.ok) return;
    testing::begin_cycle(heap());
    cycle_done();
    if (!expect_no_reports("begin_cycle()")) return;
    for (unsigned i = 0; i < prog_.config.procs; ++i)
      stale_[i] = prog_.config.flush == FlushPolicy::lazy;
    stale_known_ = true;
  }

  void exec(const RaggedBarrier&) {
    const Stats before = heap().stats();
    testing::ragged_barrier(heap());
    if (!expect_no_reports("ragged_barrier()")) return;
    const Stats after = heap().stats();
    if (stale_known_) {
      const auto n = static_cast<std::uint64_t>(std::count(stale_.begin(), stale_.end(), true));
      if (after.flushes_barrier - before.flushes_barrier != n) {
        fail("ragged_barrier flushed {} Ps; the model has {} stale",
             after.flushes_barrier - before.flushes_barrier, n);
        return;
      }
    }
    stale_.fill(false);
  }

  void exec(const FlushIdle& op) {
    const Stats before = heap().stats();
    const bool flushed = testing::flush_idle(heap(), op.proc);
    if (!expect_no_reports("flush_idle()")) return;
    const Stats after = heap().stats();
    if (after.flushes_barrier - before.flushes_barrier != (flushed ? 1u : 0u)) {
      fail("flush_idle(P{}) returned {} but flushes_barrier went {} -> {}", op.proc, flushed,
           before.flushes_barrier, after.flushes_barrier);
      return;
    }
    if (stale_known_ && flushed != stale_[op.proc]) {
      fail("flush_idle(P{}) returned {}, but the model says P{} is {}", op.proc, flushed, op.proc,
           stale_[op.proc] ? "stale" : "flushed");
      return;
    }
    stale_[op.proc] = false;
    note("{}", flushed ? "flushed" : "nothing to flush");
  }

  void exec(const FlushAll&) {
    testing::flush_all(heap());
    if (!expect_no_reports("flush_all()")) return;
    stale_.fill(false);
  }

  void exec(const Wake& op) {
    acquiring(op.proc);
    heap().proc(op.proc).wake();
    expect_no_reports("wake()");
  }

  void exec(const SweepOne&) {
    const bool swept = heap().sweep_one();
    if (!expect_no_reports("sweep_one()")) return;
    note("{}", swept ? "swept a span" : "nothing to sweep");
    if (!swept && !checked_nothing_to_sweep_) {
      checked_nothing_to_sweep_ = true;
      const testing::HeapSnapshot snap = testing::snapshot(heap());
      for (const auto& s : snap.spans) {
        if (s.in_use && s.sweepgen_delta == -2) {
          fail(
              "sweep_one() returned false but span {:#x} ({} pages, class {}) is unswept "
              "(sweepgen delta -2, {})",
              s.base, s.npages, s.span_class, testing::to_string(s.location));
          return;
        }
      }
    }
  }

  void exec(const ProportionalSweep& op) {
    const unsigned n = testing::proportional_sweep(heap(), op.bytes);
    if (!expect_no_reports("proportional_sweep()")) return;
    note("swept {} span(s)", n);
  }

  void exec(const Verify&) { boundary_check("at a Verify operation"); }

  void exec(const SizeQuery& op) { size_query(op); }
  void exec(const PacingQuery& op) { pacing_query(op); }

  void exec(const FailOs& op) {
    if (!fake_) return note("no fake OS in this program: skipped");
    switch (op.fault) {
      case OsFault::fail_reserves:
        fake_->fail_reserves(op.n % 4);
        break;
      case OsFault::fail_commits:
        fake_->fail_commits(op.n % 4);
        break;
      case OsFault::cap_committed:
        fake_->cap_committed(std::size_t{op.n} << 18);
        cap_set_ = op.n != 0;
        break;
    }
  }

  void exec(const BadAlloc& op) {
    const Stats before = heap().stats();
    void* p = do_alloc(op.proc, op.size, op.align);
    const bool bad_align = !std::has_single_bit(op.align) || op.align > max_alloc_size;
    const ErrorKind want = bad_align ? ErrorKind::bad_alignment : ErrorKind::size_overflow;
    if (p != nullptr) {
      fail("allocate(size={:#x}, align={}) returned {} instead of nullptr", op.size, op.align, p);
      return;
    }
    if (!expect_one_report(want, nullptr, "bad allocation")) return;
    unchanged(before, "a bad allocation");
    note("nullptr + {}", to_string(want));
  }

  void exec(const BadFree& op) {
    const Stats before = heap().stats();
    void* bad = nullptr;
    ErrorKind want = ErrorKind::invalid_free;
    bool either_invalid = false;  // invalid_free is also right (see double_reclaimed)
    bool usable_call = false;
    switch (op.kind) {
      case BadKind::interior:
      case BadKind::usable_interior: {
        Object* o = pick_live(op.pick);
        if (o == nullptr || o->usable < 2) return note("no live object of 2+ bytes: skipped");
        bad = o->p + 1 + op.offset % (o->usable - 1);
        usable_call = op.kind == BadKind::usable_interior;
        // free() of an interior pointer is interior_free; usable_size() of one is API misuse
        // (usable_size is only defined on an object's start).
        want = usable_call ? ErrorKind::misuse : ErrorKind::interior_free;
        note("#{} + {}", o->id, static_cast<std::byte*>(bad) - o->p);
        break;
      }
      case BadKind::double_pending: {
        if (pending_.empty()) return note("nothing pending: skipped");
        const Freed& f = pending_[op.pick % pending_.size()];
        if (!still_pending(f)) return note("#{} already reclaimed: skipped", f.id);
        bad = f.p;
        want = ErrorKind::double_free;
        note("#{} again", f.id);
        break;
      }
      case BadKind::double_reclaimed: {
        if (reclaimed_.empty()) return note("nothing reclaimed: skipped");
        const Freed& f = reclaimed_[op.pick % reclaimed_.size()];
        // If the slot was handed out again this is a valid free of someone else: not a bad call,
        // and outside the guarantee (docs/design.md §"Bad input": detected only in quarantine).
        if (live_overlap(addr(f.p), std::max<std::size_t>(f.usable, 1)) != nullptr)
          return note("#{}'s memory is live again: skipped", f.id);
        const PointerInfo info = heap().find_object(f.p);
        // Free pages that held the object: the heap's page history says "freed", so it must say
        // double_free. A free slot at the object's start: double_free while the span that
        // reclaimed it is still there, but if the span went back to the page heap and a new
        // span of the same class took the pages, the new span never allocated that slot and
        // invalid_free is right. The model cannot see span identity, so it accepts either there.
        if (info.kind == PointerKind::free_pages) {
          want = ErrorKind::double_free;
        } else if (info.kind == PointerKind::free_slot && info.base == f.p) {
          want = ErrorKind::double_free;
          either_invalid = true;
        } else {
          return note("#{}'s pages were reused ({}): skipped", f.id, kind_name(info.kind));
        }
        bad = f.p;
        note("#{} again, after its slot was reclaimed ({})", f.id, kind_name(info.kind));
        break;
      }
      case BadKind::foreign:
        bad = foreign_buffer + op.offset % sizeof foreign_buffer;
        want = ErrorKind::foreign_free;
        if (heap().owns(bad) || heap().find_object(bad).kind != PointerKind::foreign) {
          fail("a static buffer at {} is claimed by the heap (owns or find_object)", bad);
          return;
        }
        break;
      case BadKind::other_heap: {
        if (!other_) {
          Options o = options_;
          o.procs = 1;
          o.os = nullptr;
          o.memory_limit = 0;
          o.error_handler = other_rec_.handler();
          other_.emplace(o);
        }
        other_obj_ = other_->allocate(16 + op.offset % 256);
        if (other_obj_ == nullptr) return fail("the second heap could not allocate");
        bad = other_obj_;
        want = ErrorKind::misuse;
        const PointerInfo info = heap().find_object(bad);
        if (info.kind != PointerKind::other_heap) {
          fail("find_object(object of another heap) = {}, expected other_heap",
               kind_name(info.kind));
          return;
        }
        break;
      }
      case BadKind::span_tail: {
        Object* o = pick_live(op.pick);
        if (o == nullptr) return note("no live object: skipped");
        const testing::HeapSnapshot snap = testing::snapshot(heap());
        for (const auto& s : snap.spans) {
          if (!s.in_use || addr(o->p) < s.base || addr(o->p) >= s.base + s.npages * page_size)
            continue;
          const std::size_t used = std::size_t{s.nelems} * s.elem_size;
          if (s.span_class == 0 || used >= s.npages * page_size) break;
          bad = reinterpret_cast<void*>(s.base + used + op.offset % (s.npages * page_size - used));
          want = ErrorKind::invalid_free;
          break;
        }
        if (bad == nullptr) return note("#{}'s span has no tail: skipped", o->id);
        if (heap().find_object(bad).kind != PointerKind::span_tail) {
          fail("find_object({}) in the tail of #{}'s span = {}, expected span_tail", bad, o->id,
               kind_name(heap().find_object(bad).kind));
          return;
        }
        note("{} in the tail of #{}'s span", bad, o->id);
        break;
      }
    }
    if (!expect_no_reports("setting up a bad free")) return;
    if (usable_call) {
      const std::size_t n = heap().usable_size(bad);
      if (n != 0) {
        fail("usable_size({}) of an interior pointer returned {}, expected 0", bad, n);
        return;
      }
    } else {
      do_free(op.proc, bad);
    }
    if (either_invalid && rec_.count() == 1 && rec_.count(ErrorKind::invalid_free) == 1) {
      want = ErrorKind::invalid_free;
    }
    if (!expect_one_report(want, bad, usable_call ? "usable_size(interior)" : "bad free")) return;
    if (!unchanged(before, "a bad free")) return;
    if (op.kind == BadKind::other_heap) {
      other_->free(other_obj_);
      if (!other_rec_.take().empty()) {
        fail("the second heap reported an error freeing its own object");
        return;
      }
    }
    // A rejected call that swept or flushed changed the heap's structures: verify now. One that
    // did neither is covered by the next boundary's verify (the heap is marked dirty).
    if (structure_changed(before)) verify("after a bad free that swept or flushed");
  }

  bool structure_changed(const Stats& before) {
    const Stats after = heap().stats();
    return after.swept_on_demand != before.swept_on_demand ||
           after.swept_by_flush != before.swept_by_flush ||
           after.swept_proportional != before.swept_proportional ||
           after.swept_termination != before.swept_termination ||
           after.flushes_lazy != before.flushes_lazy ||
           after.flushes_barrier != before.flushes_barrier ||
           after.flushes_eager != before.flushes_eager ||
           after.mapped_bytes != before.mapped_bytes || after.span_bytes != before.span_bytes ||
           after.released_bytes != before.released_bytes;
  }

  // ---- pacing arithmetic (no heap) ----
  // The model is the contract of lib/src/pacing.hpp computed in 128-bit integers and long double:
  // the trigger exactly, the ratio to 1e-12, the sweep target to the rounding of one double
  // product, saturating instead of wrapping, monotone in the bytes allocated, and owing every
  // page once 90% of the trigger is allocated.
  void pacing_query(const PacingQuery& q) {
    __extension__ typedef unsigned __int128 u128;  // the model's exact arithmetic
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const testing::PacingPlan plan = testing::plan_pacing(q.survivors, q.gc_percent, q.memory_limit,
                                                          q.committed, q.pages_to_sweep);
    note("trigger {} ratio {}", plan.trigger, plan.pages_per_byte);
    std::uint64_t want = 0;
    if (q.gc_percent != 0) {
      const u128 t = u128{q.survivors} * q.gc_percent / 100;
      want = t > max ? max : static_cast<std::uint64_t>(t);
      want = std::max(want, testing::pacing_trigger_floor());
    }
    if (q.memory_limit != 0) {
      const std::uint64_t limit = q.memory_limit / 10 * 9;
      const std::uint64_t room = limit > q.committed ? limit - q.committed : page_size;
      if (want == 0 || room < want) want = room;
    }
    if (plan.trigger != want) {
      return fail(
          "plan_pacing: trigger {} but the contract gives {} (survivors {}, gc {}%, limit {}, "
          "committed {})",
          plan.trigger, want, q.survivors, q.gc_percent, q.memory_limit, q.committed);
    }
    const double ratio = plan.pages_per_byte;
    if (!std::isfinite(ratio) || ratio < 0)
      return fail("plan_pacing: ratio {} is not a finite, non-negative number", ratio);
    if (want == 0 || q.pages_to_sweep == 0) {
      if (ratio != 0) return fail("plan_pacing: ratio {} with nothing to pace", ratio);
    } else {
      const long double exact =
          static_cast<long double>(q.pages_to_sweep) / (static_cast<long double>(want) * 0.9L);
      if (std::fabs(static_cast<long double>(ratio) - exact) > exact * 1e-12L)
        return fail("plan_pacing: ratio {} but {} pages over 90% of {} bytes is {}", ratio,
                    q.pages_to_sweep, want, static_cast<double>(exact));
    }
    // The sweep target: floor(ratio * allocated), saturating at 2^64-1.
    auto expected = [&](std::uint64_t allocated) -> long double {
      return static_cast<long double>(ratio) * static_cast<long double>(allocated);
    };
    auto near = [&](std::uint64_t got, long double exact) {
      const long double two64 = 18446744073709551616.0L;
      if (exact >= two64) return got >= max - (max >> 40);  // saturated, up to the rounding
      const long double slack = 1.0L + exact * 1e-15L;
      return std::fabs(static_cast<long double>(got) - std::floor(exact)) <= slack;
    };
    const std::uint64_t got = testing::sweep_target(ratio, q.allocated);
    if (!near(got, expected(q.allocated))) {
      return fail("sweep_target({}, {}) = {}, expected about {}", ratio, q.allocated, got,
                  static_cast<double>(expected(q.allocated)));
    }
    const std::uint64_t more = q.allocated > max / 2 ? max : q.allocated * 2 + 1;
    const std::uint64_t got_more = testing::sweep_target(ratio, more);
    if (got_more < got)
      return fail("sweep_target is not monotone: {} bytes owe {} pages, {} bytes owe {}",
                  q.allocated, got, more, got_more);
    if (testing::sweep_target(ratio, 0) != 0) return fail("sweep_target({}, 0) is not 0", ratio);
    if (want != 0 && q.pages_to_sweep != 0) {
      // Every page is owed once 90% of the trigger is allocated (up to a page of rounding).
      const long double at = std::ceil(static_cast<long double>(want) * 0.9L);
      const std::uint64_t bytes =
          at >= 18446744073709551615.0L ? max : static_cast<std::uint64_t>(at);
      const std::uint64_t owed = testing::sweep_target(ratio, bytes);
      // The ratio is a double: past 2^53 pages the owed count is exact only to its precision.
      const auto slack =
          static_cast<std::uint64_t>(1 + static_cast<double>(q.pages_to_sweep) * 1e-15);
      if (q.pages_to_sweep > slack && owed < q.pages_to_sweep - slack && bytes != max)
        return fail("after {} bytes (90% of the trigger {}) only {} of {} pages are owed", bytes,
                    want, owed, q.pages_to_sweep);
    }
  }

  // ---- size classes (no heap) ----
  void size_query(const SizeQuery& op) {
    const auto& table = class_table();
    if (table.empty()) return fail("testing::size_classes() is empty");
    const unsigned cls = testing::size_to_class(op.size, op.align);
    note("class {}", cls);
    // The smallest class that fits and keeps the alignment (objects sit at base + i * size, spans
    // are page aligned, so a class keeps `align` when its size is a multiple of it).
    // Alignments above the page size make a large span (class 0); the decoder never asks for
    // them here, and the call must only answer without crashing.
    if (op.align > page_size) return;
    unsigned best = 0;
    std::size_t best_size = 0;
    if (op.size <= max_small_size && op.align <= page_size) {
      for (const auto& [c, info] : table) {
        if (info.size >= op.size && info.size % op.align == 0 &&
            (best == 0 || info.size < best_size)) {
          best = c;
          best_size = info.size;
        }
      }
    }
    if (cls == 0) {
      if (best != 0) {
        fail("size_to_class({}, {}) = 0 (large) but class {} ({} bytes) fits", op.size, op.align,
             best, best_size);
      }
      return;
    }
    auto it = table.find(cls);
    if (it == table.end())
      return fail("size_to_class({}, {}) = {}: no such class", op.size, op.align, cls);
    const testing::SizeClassInfo& info = it->second;
    if (info.size < op.size) {
      return fail("size_to_class({}, {}) = class {} of only {} bytes", op.size, op.align, cls,
                  info.size);
    }
    if (info.size % op.align != 0 && op.align <= page_size) {
      return fail("size_to_class({}, {}) = class {} ({} bytes) does not keep the alignment",
                  op.size, op.align, cls, info.size);
    }
    if (info.size != best_size) {
      return fail(
          "size_to_class({}, {}) = class {} ({} bytes), but class {} ({} bytes) is smaller "
          "and fits",
          op.size, op.align, cls, info.size, best, best_size);
    }
    if (info.nelems == 0 || info.nelems * info.size + info.tail_waste != info.npages * page_size) {
      return fail("class {}: {} objects of {} bytes + {} tail != {} pages", cls, info.nelems,
                  info.size, info.tail_waste, info.npages);
    }
    if (info.tail_waste * 8 > info.npages * page_size) {
      return fail("class {}: tail waste {} exceeds 12.5% of {} pages", cls, info.tail_waste,
                  info.npages);
    }
    if (testing::size_to_class(info.size, 1) != cls && testing::size_to_class(info.size, 1) != 0) {
      const auto other = table.find(testing::size_to_class(info.size, 1));
      if (other == table.end() || other->second.size != info.size) {
        return fail("round trip: class {} has size {}, but size_to_class({}, 1) = {}", cls,
                    info.size, info.size, testing::size_to_class(info.size, 1));
      }
    }
  }

  // ---- after every step ----
  // A P that acquires flushes itself first if it is stale (lazy flush at acquire), exactly once.
  // Through the facade the P is the thread's, which the model does not track.
  void acquiring(unsigned proc) {
    if (proc == via_heap) {
      stale_known_ = false;
    } else if (proc < stale_.size()) {
      if (stale_[proc] && prog_.config.flush == FlushPolicy::lazy) expected_lazy_flushes_ = 1;
      stale_[proc] = false;
    }
  }

  void cycle_done() { checked_nothing_to_sweep_ = false; }

  // A rejected call must not change what is live or what was counted. It may sweep (a free
  // makes its span swept first, as Go's ensureSwept does), which reclaims objects freed before
  // the cycle: pending_frees and live_bytes may only go down, and only by reclaiming.
  bool unchanged(const Stats& before, const char* what) {
    const Stats after = heap().stats();
    if (after.live_objects - after.pending_frees != before.live_objects - before.pending_frees ||
        after.pending_frees > before.pending_frees || after.allocations != before.allocations ||
        after.frees != before.frees || after.live_bytes > before.live_bytes) {
      fail(
          "{} changed the heap: live_objects {} -> {}, pending_frees {} -> {}, allocations {} -> "
          "{}, frees {} -> {}, live_bytes {} -> {}",
          what, before.live_objects, after.live_objects, before.pending_frees, after.pending_frees,
          before.allocations, after.allocations, before.frees, after.frees, before.live_bytes,
          after.live_bytes);
      return false;
    }
    return true;
  }

  void verify(const char* when) { verified(heap().verify(), when); }
  // Records the outcome of a whole-heap verify (Heap::verify or a verifying snapshot).
  void verified(const VerifyResult& r, const char* when) {
    dirty_ = false;
    if (!r.ok()) {
      fail("heap.verify() {} found {} violation(s) (last clean verify: {}):\n{}", when,
           r.violations.size(), last_clean_verify(), r.to_string());
      return;
    }
    if (!expect_no_reports("verify()")) return;
    verified_at_ = step_;
    verified_ever_ = true;
  }
  // verify() walks the whole heap with the world stopped, the most expensive call there is; it
  // runs only where something ran since the last one.
  void verify_if_dirty(const char* when) {
    if (dirty_) verify(when);
  }
  std::string last_clean_verify() const {
    if (!verified_ever_) return "none yet";
    if (verified_at_ >= prog_.ops.size())
      return "at the end of the program, before the final frees";
    return fmt::format("after step {}", verified_at_);
  }

  void after_step(const Op& op) {
    const Stats before = stats_;
    stats_ = heap().stats();
    if (!expect_no_reports("the step")) return;
    if (stats_.cycles != before.cycles && !op_is<Collect>(op) && !op_is<BeginCycle>(op)) {
      // Pacing started a cycle inside an allocation: which Ps went stale is up to the heap.
      stale_known_ = false;
      cycle_done();
    }
    // Lazy flushes: an explicit-P acquire of a stale P must flush exactly once.
    if (explicit_procs_ && stale_known_ && prog_.config.flush == FlushPolicy::lazy) {
      const std::uint64_t lazy = stats_.flushes_lazy - before.flushes_lazy;
      if (lazy != expected_lazy_flushes_) {
        fail("flushes_lazy went up by {} in this step; the model expected {}", lazy,
             expected_lazy_flushes_);
        return;
      }
    }
    // A free of an object in a span that another, idle P still caches from before the cycle
    // makes the heap flush that P on the spot (ensure_swept helping the ragged barrier). The
    // model cannot see span ownership cheaply, so it reads the snapshot when that happens and
    // checks that exactly the counted number of stale Ps became flushed, and no other P changed.
    const bool barrier_op = op_is<FlushIdle>(op) || op_is<RaggedBarrier>(op) ||
                            op_is<Collect>(op) || op_is<BeginCycle>(op);
    if (explicit_procs_ && stale_known_ && !barrier_op &&
        stats_.flushes_barrier != before.flushes_barrier) {
      const testing::HeapSnapshot snap = testing::snapshot(heap());
      std::uint64_t helped = 0;
      for (const auto& pi : snap.procs) {
        if (pi.index >= stale_.size()) continue;
        const bool stale = pi.flush_gen_delta == -2;
        if (stale && !stale_[pi.index]) {
          fail("P{} is stale in the snapshot but was flushed and no cycle started", pi.index);
          return;
        }
        if (!stale && stale_[pi.index]) ++helped;
        stale_[pi.index] = stale;
      }
      if (helped != stats_.flushes_barrier - before.flushes_barrier) {
        fail("flushes_barrier went up by {} in this step, but {} stale P(s) became flushed",
             stats_.flushes_barrier - before.flushes_barrier, helped);
        return;
      }
      note("(the heap flushed {} idle stale P(s) to free into their span)", helped);
    }
    if (stats_.allocations != allocations_ || stats_.frees != frees_) {
      fail("stats: allocations {} (model {}), frees {} (model {})", stats_.allocations,
           allocations_, stats_.frees, frees_);
      return;
    }
    if (stats_.live_objects < live_.size() ||
        stats_.live_objects - live_.size() > pending_.size() ||
        stats_.pending_frees != stats_.live_objects - live_.size()) {
      fail(
          "stats: live_objects {} and pending_frees {}, but the model has {} live and at most {} "
          "pending",
          stats_.live_objects, stats_.pending_frees, live_.size(), pending_.size());
      return;
    }
    // Between boundaries: the ends of a few live objects per step, round robin, so an object
    // clobbered by a step is seen within live/2 steps even in a program without cycles; the
    // objects a step touched were checked in full by the step itself.
    for (unsigned k = 0; k < rotating_checks && !live_.empty(); ++k) {
      if (!check_contents(live_[rotor_++ % live_.size()], false)) return;
    }
    if (is_boundary(op) && !op_is<Verify>(op)) {
      boundary_check("after the cycle operation");  // Verify ran it itself
    }
  }

  // The whole-heap check at a boundary (a cycle operation, a Verify operation, the end): every
  // live object's sampled contents and find_object, the pending frees, the snapshot's span and P
  // states (explicit-P and page-heap targets) and heap.verify(), unless nothing ran since the
  // last verify. (owns and usable_size are checked at allocation and by Check operations; a
  // later change of the size would show in find_object's size.)
  void boundary_check(const char* when) {
    // The targets that read the snapshot get the verify from the same census (one walk of the
    // heap instead of two); nothing below changes the heap, so the snapshot stays current.
    std::optional<testing::HeapSnapshot> snap;
    if (prog_.target == Target::procs_interleave || prog_.target == Target::page_heap) {
      VerifyResult r;
      const bool verifying = dirty_;
      snap = testing::snapshot(heap(), verifying ? &r : nullptr);
      if (!expect_no_reports("snapshot()")) return;
      if (verifying) verified(r, when);
    } else {
      verify_if_dirty(when);
    }
    if (!out_.ok) return;
    scan_pending();
    if (!out_.ok) return;
    stats_ = heap().stats();
    if (stats_.pending_frees != pending_.size() ||
        stats_.live_objects != live_.size() + pending_.size()) {
      fail("stats: live_objects {} / pending_frees {}, model {} live + {} pending",
           stats_.live_objects, stats_.pending_frees, live_.size(), pending_.size());
      return;
    }
    for (const Object& o : live_) {
      if (!check_contents(o, true) || !check_found(o)) return;
    }
    if (testing::sweep_done(heap())) {
      for (const Freed& f : pending_) {
        if (f.cycle < stats_.cycles) {
          fail("sweep_done() holds but #{} (freed in cycle {}, now {}) is still pending", f.id,
               f.cycle, stats_.cycles);
          return;
        }
      }
    }
    if (snap) check_snapshot(*snap);
  }

  void check_snapshot(const testing::HeapSnapshot& snap) {
    std::uint64_t objects = 0;
    std::uintptr_t prev_end = 0;
    for (const auto& s : snap.spans) {
      if (s.base < prev_end) {
        fail("snapshot: span {:#x} starts inside the previous span (ends {:#x})", s.base, prev_end);
        return;
      }
      prev_end = s.base + s.npages * page_size;
      if (!s.in_use) {
        if (const Object* o = live_overlap(s.base, s.npages * page_size)) {
          fail("live #{} at {} lies in free page run {:#x} (+{} pages)", o->id,
               static_cast<void*>(o->p), s.base, s.npages);
          return;
        }
        continue;
      }
      objects += s.alloc_count;
      const auto d = s.sweepgen_delta;
      const bool cached = s.location == testing::SpanLocation::cached;
      if (d != -2 && d != 0 && d != 1 && d != 3) {
        fail("snapshot: span {:#x} has sweepgen delta {} with the world stopped", s.base, d);
        return;
      }
      if (cached != (d == 1 || d == 3) || (cached && s.span_class == 0)) {
        fail("snapshot: span {:#x} (class {}) is {} with sweepgen delta {}", s.base, s.span_class,
             testing::to_string(s.location), d);
        return;
      }
      if (cached) {
        if (s.cache_proc < 0 || static_cast<std::size_t>(s.cache_proc) >= snap.procs.size()) {
          fail("snapshot: span {:#x} cached by P{}", s.base, s.cache_proc);
          return;
        }
        const bool stale = snap.procs[static_cast<std::size_t>(s.cache_proc)].flush_gen_delta == -2;
        if (stale != (d == 1)) {
          fail(
              "snapshot: span {:#x} at sweepgen delta {} cached by P{} whose flush_gen delta is "
              "{}",
              s.base, d, s.cache_proc,
              snap.procs[static_cast<std::size_t>(s.cache_proc)].flush_gen_delta);
          return;
        }
      }
      if (snap.sweep_done && (d == -2 || d == 1)) {
        fail("snapshot: sweep done but span {:#x} is at sweepgen delta {}", s.base, d);
        return;
      }
    }
    if (objects != snap.stats.live_objects) {
      fail("snapshot: spans hold {} objects, stats say {} live", objects, snap.stats.live_objects);
      return;
    }
    if (explicit_procs_ && stale_known_) {
      for (const auto& pi : snap.procs) {
        const bool stale = pi.flush_gen_delta == -2;
        if (pi.flush_gen_delta != 0 && pi.flush_gen_delta != -2) {
          fail("snapshot: P{} has flush_gen delta {}", pi.index, pi.flush_gen_delta);
          return;
        }
        if (pi.index < stale_.size() && stale != stale_[pi.index]) {
          fail("snapshot: P{} is {} but the model says {}", pi.index, stale ? "stale" : "flushed",
               stale_[pi.index] ? "stale" : "flushed");
          return;
        }
      }
    }
  }

  // End of program: everything checked in full, then everything freed and reclaimed.
  void finish() {
    step_ = prog_.ops.size();
    line_.clear();
    boundary_check("at the end");
    if (!out_.ok) return;
    for (const Object& o : live_) {
      heap().free(o.p);
      pending_.push_back(Freed{o.id, o.p, o.size, o.usable, stats_.cycles});
    }
    frees_ += live_.size();
    live_.clear();
    ranges_.clear();
    if (!expect_no_reports("freeing every live object at the end")) return;
    // One cycle makes every pending free reclaimable (the ragged barrier sweeps what stale
    // caches held); sweeping whatever is left reclaims the rest.
    heap().collect();
    while (heap().sweep_one()) {
    }
    if (!expect_no_reports("the final cycles")) return;
    const Stats s = heap().stats();
    if (s.live_objects != 0 || s.pending_frees != 0) {
      fail(
          "after freeing everything, a cycle and a full sweep, the heap still has {} live objects "
          "and {} "
          "pending frees",
          s.live_objects, s.pending_frees);
      return;
    }
    verify("after the final cycles");
    if (opts_.trace && out_.ok) {
      out_.trace += "  end   freed everything, a cycle, swept: heap empty, verify() clean\n";
    }
  }

  const Program& prog_;
  RunOptions opts_;
  bool explicit_procs_;
  Outcome out_;
  std::size_t step_ = 0;
  std::string line_;

  testing::RecordingHandler rec_;
  testing::RecordingHandler other_rec_;
  std::optional<testing::FakeOsMemory> fake_;
  bool cap_set_ = false;
  Options options_;
  std::optional<Heap> heap_;
  std::optional<Heap> other_;
  void* other_obj_ = nullptr;

  std::vector<Object> live_;
  // Live objects' [begin, end) by begin address, for the overlap checks. A sorted vector: no
  // allocation per object, and the model holds at most a few hundred.
  struct Range {
    std::uintptr_t begin;
    std::uintptr_t end;
    std::uint64_t id;
  };
  std::vector<Range> ranges_;
  std::vector<Freed> pending_;
  std::vector<Freed> reclaimed_;
  std::uint64_t next_id_ = 0;
  std::uint64_t allocations_ = 0;
  std::uint64_t frees_ = 0;
  Stats stats_;
  std::size_t rotor_ = 0;        // next live object for the per-step rotating check
  bool dirty_ = true;            // something ran since the last verify()
  std::size_t verified_at_ = 0;  // step after which verify() was last clean
  bool verified_ever_ = false;
  bool checked_nothing_to_sweep_ = false;
  std::array<bool, 8> stale_{};
  bool stale_known_ = true;
  std::uint64_t expected_lazy_flushes_ = 0;
};

}  // namespace

Outcome run(const Program& program, const RunOptions& options) {
  return Runner(program, options).run();
}

std::string Outcome::report(const Program& program) const {
  if (ok) return "ok";
  std::string out =
      fmt::format("oracle failure at step {} of {}: {}\n", step, program.ops.size(), failure);
  Program so_far = program;
  if (step < so_far.ops.size()) so_far.ops.resize(step + 1);
  out += to_trace(so_far);
  if (!trace.empty()) out += "executed:\n" + trace;
  return out;
}

}  // namespace spanheap::fuzz
