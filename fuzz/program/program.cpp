// Decoding bytes into a Program and encoding a Program back into bytes (program.hpp). The byte
// layout is documented in docs/fuzzing.md; decode() and encode() here are its only definition, and
// program_test.cpp checks that encode() inverts decode().
#include "program.hpp"

#include <spanheap/testing.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <type_traits>

#include "byte_reader.hpp"

namespace spanheap::fuzz {
namespace {

// Each target's operation mix: the low 4 bits of an opcode byte index its table, so the weights
// are the number of entries (alloc_free allocates 5/16 of the time). The upper bits are ignored.
using OpTable = std::array<std::size_t, 16>;
// The table of a target with one operation (the pure-function targets).
template <class T>
constexpr OpTable only() {
  OpTable t{};
  t.fill(op_index<T>);
  return t;
}
constexpr OpTable alloc_free_ops = {
    op_index<Alloc>,   op_index<Alloc>,    op_index<Alloc>,    op_index<Alloc>,
    op_index<Alloc>,   op_index<Free>,     op_index<Free>,     op_index<Free>,
    op_index<Free>,    op_index<Refill>,   op_index<Check>,    op_index<Collect>,
    op_index<Collect>, op_index<SweepOne>, op_index<SweepOne>, op_index<Verify>};
constexpr OpTable procs_interleave_ops = {op_index<Alloc>,      op_index<Alloc>,
                                          op_index<Alloc>,      op_index<Alloc>,
                                          op_index<Free>,       op_index<Free>,
                                          op_index<Free>,       op_index<Wake>,
                                          op_index<Wake>,       op_index<FlushIdle>,
                                          op_index<BeginCycle>, op_index<RaggedBarrier>,
                                          op_index<FlushAll>,   op_index<ProportionalSweep>,
                                          op_index<SweepOne>,   op_index<Collect>};
constexpr OpTable bad_free_ops = {
    op_index<Alloc>,   op_index<Alloc>,      op_index<Alloc>,    op_index<Alloc>,
    op_index<Free>,    op_index<Free>,       op_index<Free>,     op_index<BadFree>,
    op_index<BadFree>, op_index<BadFree>,    op_index<BadFree>,  op_index<BadAlloc>,
    op_index<Collect>, op_index<BeginCycle>, op_index<SweepOne>, op_index<Wake>};
constexpr OpTable page_heap_ops = {
    op_index<Alloc>,  op_index<Alloc>,   op_index<Alloc>,   op_index<Alloc>,
    op_index<Alloc>,  op_index<Free>,    op_index<Free>,    op_index<Free>,
    op_index<Free>,   op_index<Collect>, op_index<Collect>, op_index<SweepOne>,
    op_index<FailOs>, op_index<FailOs>,  op_index<Verify>,  op_index<FlushAll>};
constexpr OpTable size_classes_ops = only<SizeQuery>();

constexpr OpTable pacing_ops = only<PacingQuery>();

const OpTable& table(Target target) {
  switch (target) {
    case Target::alloc_free:
      return alloc_free_ops;
    case Target::procs_interleave:
      return procs_interleave_ops;
    case Target::bad_free:
      return bad_free_ops;
    case Target::page_heap:
      return page_heap_ops;
    case Target::size_classes:
      return size_classes_ops;
    case Target::pacing:
      return pacing_ops;
  }
  return alloc_free_ops;
}

// Targets whose operations name an explicit P (a Proc handle); the others go through the facade.
bool uses_procs(Target target) {
  return target == Target::procs_interleave || target == Target::bad_free;
}

const std::vector<std::size_t>& class_sizes() {
  static const std::vector<std::size_t> sizes = [] {
    std::vector<std::size_t> out;
    for (const auto& c : testing::size_classes()) out.push_back(c.size);
    if (out.empty()) out.push_back(16);
    return out;
  }();
  return sizes;
}

// --- field codecs: each read_* has a matching write_* (nullopt: value not encodable) -----------

class Writer {
 public:
  void u8(unsigned v) { out.push_back(static_cast<std::uint8_t>(v)); }
  void u16(unsigned v) {
    u8(v & 0xff);
    u8((v >> 8) & 0xff);
  }
  void u32(std::uint32_t v) {
    u16(v & 0xffff);
    u16(v >> 16);
  }
  std::vector<std::uint8_t> out;
};

// A number of any magnitude: a byte L (0..64, taken mod 65) for its bit length, then the
// ceil(L/8) low bytes of the value; the top bit is forced, so the length is exact and every
// magnitude from 0 to 2^64-1 is equally easy for a mutation to reach.
std::uint64_t read_magnitude(ByteReader& r) {
  const unsigned len = r.u8() % 65u;
  if (len == 0) return 0;
  std::uint64_t v = 0;
  for (unsigned i = 0; i < (len + 7) / 8; ++i) v |= std::uint64_t{r.u8()} << (8 * i);
  const std::uint64_t top = std::uint64_t{1} << (len - 1);
  return (v & (top | (top - 1))) | top;
}
void write_magnitude(Writer& w, std::uint64_t v) {
  const auto len = static_cast<unsigned>(std::bit_width(v));
  w.u8(len);
  for (unsigned i = 0; i < (len + 7) / 8; ++i) w.u8(static_cast<unsigned>((v >> (8 * i)) & 0xff));
}

unsigned read_proc(ByteReader& r, const Program& p) {
  return uses_procs(p.target) ? r.u8() % p.config.procs : via_heap;
}
bool write_proc(Writer& w, const Program& p, unsigned proc) {
  if (!uses_procs(p.target)) return proc == via_heap;
  if (proc >= p.config.procs) return false;
  w.u8(proc);
  return true;
}

// Bad power-of-two alignments are multiples of this: past max_alloc_size, the largest alignment
// allocate() honours.
constexpr std::size_t bad_align_unit = max_alloc_size * 2;

// Alignment: a power of two up to the page size.
std::size_t read_align(ByteReader& r) { return std::size_t{1} << (r.u8() % 14); }
bool write_align(Writer& w, std::size_t align) {
  if (!std::has_single_bit(align) || align > page_size) return false;
  w.u8(static_cast<unsigned>(std::countr_zero(align)));
  return true;
}

// Object sizes for the small-object targets. First byte: mode in the top 2 bits.
//   0: size = low 6 bits                       (0..63)
//   1: size = low << 8 | next byte             (0..16383)
//   2: a size class's size + (low & 31) - 16, the class chosen by the next byte (class edges)
//   3: size = low << 12 | next u16 & 0xfff     (0..256 KiB: large objects; page_heap goes bigger)
std::size_t read_size(ByteReader& r) {
  const unsigned f = r.u8();
  const unsigned low = f & 63;
  switch (f >> 6) {
    case 0:
      return low;
    case 1:
      return (std::size_t{low} << 8) | r.u8();
    case 2: {
      const auto& sizes = class_sizes();
      const std::size_t base = sizes[r.u8() % sizes.size()];
      const long delta = static_cast<long>(low & 31) - 16;
      return delta < 0 && base < static_cast<std::size_t>(-delta)
                 ? 0
                 : static_cast<std::size_t>(static_cast<long>(base) + delta);
    }
    default:
      return (std::size_t{low} << 12) | (r.u16() & 0xfff);
  }
}
bool write_size(Writer& w, std::size_t size) {
  if (size < 64) {
    w.u8(static_cast<unsigned>(size));
  } else if (size < 16384) {
    w.u8(0x40 | static_cast<unsigned>(size >> 8));
    w.u8(size & 0xff);
  } else if (size < (std::size_t{64} << 12)) {
    w.u8(0xC0 | static_cast<unsigned>(size >> 12));
    w.u16(size & 0xfff);
  } else {
    return false;
  }
  return true;
}

// Page-heap sizes: a page count from a u16 whose top 5 bits pick the range: 0-19 (twenty of 32
// values) 1..8 pages, 20-27 1..32 pages, 28-30 1..128 pages (the exact free lists end at 128),
// 31 1..512 pages (up to 4 MiB: past every arena size, and across memory limits and OS caps in a
// few allocations); the low bits give the count within the range, the bits in between are
// ignored. Then a shortfall of up to 4064 bytes (0 when bit 7 of the next byte is set). The mean
// object is 21 pages (33 with 4-bit classes of 16/64/128/512 pages, 64 with 3-bit classes, 256
// with a uniform 1..512): every page of an object costs shadow writes at allocation, free and
// teardown, more objects fit an arena (more neighbours to coalesce), and the big ones are still
// one mutation of the top bits away. 60-s runs from the seed corpus reached the same coverage
// with each step down (docs/fuzzing.md "Speed").
constexpr unsigned pages_class_shift = 11;
std::size_t pages_range(unsigned range_class) {
  return range_class < 20 ? 8 : range_class < 28 ? 32 : range_class < 31 ? 128 : 512;
}
std::size_t read_pages_size(ByteReader& r) {
  const unsigned p = r.u16();
  const unsigned d = r.u8();
  const std::size_t pages = 1 + (p & (pages_range(p >> pages_class_shift) - 1));
  const std::size_t shortfall = (d & 0x80) ? 0 : std::size_t{d} * 32;
  return pages * page_size - shortfall;
}
bool write_pages_size(Writer& w, std::size_t size) {
  const std::size_t pages = (size + page_size - 1) / page_size;
  if (pages == 0 || pages > 512) return false;
  const std::size_t shortfall = pages * page_size - size;
  if (shortfall % 32 != 0 || shortfall / 32 >= 128) return false;
  const unsigned range_class = pages <= 8 ? 0 : pages <= 32 ? 20 : pages <= 128 ? 28 : 31;
  w.u16((range_class << pages_class_shift) | static_cast<unsigned>(pages - 1));
  w.u8(shortfall == 0 ? 0x80 : static_cast<unsigned>(shortfall / 32));
  return true;
}

Op read_op(ByteReader& r, const Program& p, std::size_t index) {
  switch (index) {
    case op_index<Alloc>: {
      Alloc op;
      op.proc = read_proc(r, p);
      op.size = p.target == Target::page_heap ? read_pages_size(r) : read_size(r);
      op.align = read_align(r);
      return op;
    }
    case op_index<Free>: {
      Free op;
      op.proc = read_proc(r, p);
      op.pick = r.u8();
      return op;
    }
    case op_index<Refill>:
      return Refill{r.u8()};
    case op_index<Check>:
      return Check{r.u8()};
    case op_index<Collect>:
      return Collect{};
    case op_index<BeginCycle>:
      return BeginCycle{};
    case op_index<RaggedBarrier>:
      return RaggedBarrier{};
    case op_index<FlushIdle>:
      return FlushIdle{r.u8() % p.config.procs};
    case op_index<FlushAll>:
      return FlushAll{};
    case op_index<Wake>:
      return Wake{r.u8() % p.config.procs};
    case op_index<SweepOne>:
      return SweepOne{};
    case op_index<ProportionalSweep>:
      return ProportionalSweep{std::size_t{r.u16()} * 64};
    case op_index<Verify>:
      return Verify{};
    case op_index<BadFree>: {
      BadFree op;
      op.kind = static_cast<BadKind>(r.u8() % bad_kind_count);
      op.proc = read_proc(r, p);
      op.pick = r.u8();
      op.offset = r.u16();
      if ((op.offset & freed_interior_bit) != 0 &&
          (op.kind == BadKind::double_pending || op.kind == BadKind::double_reclaimed)) {
        op.kind = op.kind == BadKind::double_pending ? BadKind::pending_interior
                                                     : BadKind::reclaimed_interior;
        op.offset &= freed_interior_bit - 1;
      }
      return op;
    }
    case op_index<BadAlloc>: {
      // Odd selector: a size past max_alloc_size. Even: an alignment that is not a power of two
      // (0 reads as 3) or is a power of two above max_alloc_size (any power of two read is scaled
      // past it: smaller ones are valid alignments).
      BadAlloc op;
      op.proc = read_proc(r, p);
      if (r.u8() & 1) {
        op.size = max_alloc_size + 1 + std::size_t{r.u16()} * page_size;
      } else {
        const std::size_t a = r.u16();
        op.align = a == 0 ? 3 : std::has_single_bit(a) ? a * bad_align_unit : a;
        op.size = r.u8();
      }
      return op;
    }
    case op_index<FailOs>: {
      FailOs op;
      op.fault = static_cast<OsFault>(r.u8() % 3);
      op.n = r.u8();
      return op;
    }
    case op_index<SizeQuery>: {
      SizeQuery op;
      const unsigned f = r.u8();
      switch (f & 3) {
        case 0:
          op.size = r.u8();
          break;
        case 1:
          op.size = r.u16();
          break;
        case 2: {
          const auto& sizes = class_sizes();
          const std::size_t base = sizes[r.u8() % sizes.size()];
          const int delta = static_cast<std::int8_t>(r.u8());
          op.size = delta < 0 && base < static_cast<std::size_t>(-delta)
                        ? 0
                        : static_cast<std::size_t>(static_cast<long>(base) + delta);
          break;
        }
        default:
          op.size = r.u32();
          break;
      }
      op.align = std::size_t{1} << (r.u8() % 16);
      return op;
    }
    case op_index<PacingQuery>: {
      PacingQuery op;
      op.survivors = read_magnitude(r);
      const unsigned f = r.u8();
      switch (f & 3) {
        case 0:
          op.gc_percent = 0;
          break;
        case 1:
          op.gc_percent = r.u8();
          break;
        case 2:
          op.gc_percent = r.u16();
          break;
        default:
          op.gc_percent = r.u32();
          break;
      }
      op.memory_limit = read_magnitude(r);
      op.committed = read_magnitude(r);
      op.pages_to_sweep = read_magnitude(r);
      op.allocated = read_magnitude(r);
      return op;
    }
    default:
      return Verify{};
  }
}

bool write_op(Writer& w, const Program& p, const Op& any) {
  const OpTable& t = table(p.target);
  const auto slot = std::find(t.begin(), t.end(), any.index());
  if (slot == t.end()) return false;
  w.u8(static_cast<unsigned>(slot - t.begin()));
  return std::visit(
      [&](const auto& op) -> bool {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, Alloc>) {
          if (!write_proc(w, p, op.proc)) return false;
          if (!(p.target == Target::page_heap ? write_pages_size(w, op.size)
                                              : write_size(w, op.size))) {
            return false;
          }
          return write_align(w, op.align);
        } else if constexpr (std::is_same_v<T, Free>) {
          if (!write_proc(w, p, op.proc) || op.pick > 255) return false;
          w.u8(op.pick);
          return true;
        } else if constexpr (std::is_same_v<T, Refill> || std::is_same_v<T, Check>) {
          if (op.pick > 255) return false;
          w.u8(op.pick);
          return true;
        } else if constexpr (std::is_same_v<T, FlushIdle> || std::is_same_v<T, Wake>) {
          if (op.proc >= p.config.procs) return false;
          w.u8(op.proc);
          return true;
        } else if constexpr (std::is_same_v<T, ProportionalSweep>) {
          if (op.bytes % 64 != 0 || op.bytes / 64 > 0xffff) return false;
          w.u16(static_cast<unsigned>(op.bytes / 64));
          return true;
        } else if constexpr (std::is_same_v<T, BadFree>) {
          const bool interior =
              op.kind == BadKind::pending_interior || op.kind == BadKind::reclaimed_interior;
          const bool doubled =
              op.kind == BadKind::double_pending || op.kind == BadKind::double_reclaimed;
          // A double free's offset has bit 15 clear: set, it would decode as an interior kind.
          if ((interior || doubled) && op.offset >= freed_interior_bit) return false;
          const BadKind written = op.kind == BadKind::pending_interior ? BadKind::double_pending
                                  : op.kind == BadKind::reclaimed_interior
                                      ? BadKind::double_reclaimed
                                      : op.kind;
          w.u8(static_cast<unsigned>(written));
          if (!write_proc(w, p, op.proc) || op.pick > 255 || op.offset > 0xffff) return false;
          w.u8(op.pick);
          w.u16(static_cast<unsigned>(op.offset | (interior ? freed_interior_bit : 0u)));
          return true;
        } else if constexpr (std::is_same_v<T, BadAlloc>) {
          if (!write_proc(w, p, op.proc)) return false;
          if (op.size > max_alloc_size) {
            const std::size_t k = (op.size - max_alloc_size - 1) / page_size;
            if (op.align != 16 || k > 0xffff || (op.size - max_alloc_size - 1) % page_size) {
              return false;
            }
            w.u8(1);
            w.u16(static_cast<unsigned>(k));
            return true;
          }
          std::size_t a = op.align;
          if (std::has_single_bit(a) && a > max_alloc_size) {
            if (a % bad_align_unit != 0 || a / bad_align_unit > 0x8000) return false;
            a /= bad_align_unit;
          } else if (std::has_single_bit(a) || a > 0xffff) {
            return false;  // a valid alignment is not a bad allocation
          }
          if (op.size > 255) return false;
          w.u8(0);
          w.u16(static_cast<unsigned>(a));
          w.u8(static_cast<unsigned>(op.size));
          return true;
        } else if constexpr (std::is_same_v<T, FailOs>) {
          if (op.n > 255) return false;
          w.u8(static_cast<unsigned>(op.fault));
          w.u8(op.n);
          return true;
        } else if constexpr (std::is_same_v<T, SizeQuery>) {
          if (op.size < 256) {
            w.u8(0);
            w.u8(static_cast<unsigned>(op.size));
          } else if (op.size < 65536) {
            w.u8(1);
            w.u16(static_cast<unsigned>(op.size));
          } else if (op.size <= 0xffffffffu) {
            w.u8(3);
            w.u32(static_cast<std::uint32_t>(op.size));
          } else {
            return false;
          }
          if (!std::has_single_bit(op.align) || std::countr_zero(op.align) >= 16) return false;
          w.u8(static_cast<unsigned>(std::countr_zero(op.align)));
          return true;
        } else if constexpr (std::is_same_v<T, PacingQuery>) {
          write_magnitude(w, op.survivors);
          if (op.gc_percent == 0) {
            w.u8(0);
          } else if (op.gc_percent <= 0xff) {
            w.u8(1);
            w.u8(op.gc_percent);
          } else if (op.gc_percent <= 0xffff) {
            w.u8(2);
            w.u16(op.gc_percent);
          } else {
            w.u8(3);
            w.u32(op.gc_percent);
          }
          write_magnitude(w, op.memory_limit);
          write_magnitude(w, op.committed);
          write_magnitude(w, op.pages_to_sweep);
          write_magnitude(w, op.allocated);
          return true;
        } else if constexpr (std::is_same_v<T, Corrupt>) {
          return false;
        } else {
          return true;  // no operands
        }
      },
      any);
}

}  // namespace

const char* to_string(Target target) noexcept {
  switch (target) {
    case Target::alloc_free:
      return "alloc_free";
    case Target::procs_interleave:
      return "procs_interleave";
    case Target::bad_free:
      return "bad_free";
    case Target::page_heap:
      return "page_heap";
    case Target::size_classes:
      return "size_classes";
    case Target::pacing:
      return "pacing";
  }
  return "?";
}

std::optional<Target> target_from_string(std::string_view name) noexcept {
  for (Target t : all_targets) {
    if (name == to_string(t)) return t;
  }
  return std::nullopt;
}

const char* to_string(BadKind kind) noexcept {
  switch (kind) {
    case BadKind::interior:
      return "interior";
    case BadKind::double_pending:
      return "double_pending";
    case BadKind::double_reclaimed:
      return "double_reclaimed";
    case BadKind::foreign:
      return "foreign";
    case BadKind::other_heap:
      return "other_heap";
    case BadKind::span_tail:
      return "span_tail";
    case BadKind::usable_interior:
      return "usable_interior";
    case BadKind::pending_interior:
      return "pending_interior";
    case BadKind::reclaimed_interior:
      return "reclaimed_interior";
  }
  return "?";
}

const char* to_string(OsFault fault) noexcept {
  switch (fault) {
    case OsFault::fail_reserves:
      return "fail_reserves";
    case OsFault::fail_commits:
      return "fail_commits";
    case OsFault::cap_committed:
      return "cap_committed";
  }
  return "?";
}

// Header (heap targets; size_classes and pacing have none):
//   byte 0: bits 0-2 procs-1, bit 3 eager flush, bit 4 pacing, bit 5 fake OS, bits 6-7 arena MiB-1
//   byte 1: bits 0-2 gc_percent = 5 + 10*n when pacing, bit 3 ReusePolicy::owner (clear:
//           next_cycle), bits 4-7 memory limit = 4*n MiB (0 = none)
// then opcodes (low 4 bits index the target's table) each followed by its operands.
Program decode(Target target, std::span<const std::uint8_t> bytes) {
  ByteReader r(bytes);
  Program p;
  p.target = target;
  if (has_heap(target)) {
    const unsigned b0 = r.u8();
    const unsigned b1 = r.u8();
    p.config.procs = 1 + (b0 & 7);
    p.config.flush = (b0 & 8) ? FlushPolicy::eager : FlushPolicy::lazy;
    p.config.gc_percent = (b0 & 16) ? 5 + 10 * (b1 & 7) : 0;
    p.config.reuse = (b1 & 8) ? ReusePolicy::owner : ReusePolicy::next_cycle;
    p.config.fake_os = (b0 & 32) != 0;
    p.config.arena_mib = 1 + (b0 >> 6);
    p.config.memory_limit_mib = 4 * (b1 >> 4);
  }
  const OpTable& t = table(target);
  std::size_t boundaries = 0;
  p.ops.reserve(std::min(bytes.size(), max_ops));  // every operation takes at least one byte
  while (!r.empty() && p.ops.size() < max_ops) {
    Op op = read_op(r, p, t[r.u8() & 15]);
    if (is_boundary(op) && ++boundaries > max_boundaries) continue;
    p.ops.push_back(std::move(op));
  }
  return p;
}

bool is_boundary(const Op& op) noexcept {
  return op_is<Collect>(op) || op_is<BeginCycle>(op) || op_is<RaggedBarrier>(op) ||
         op_is<FlushAll>(op) || op_is<Verify>(op);
}

std::optional<std::vector<std::uint8_t>> encode(const Program& p) {
  Writer w;
  if (has_heap(p.target)) {
    const HeapConfig& c = p.config;
    if (c.procs < 1 || c.procs > 8 || c.arena_mib < 1 || c.arena_mib > 4) return std::nullopt;
    if (c.memory_limit_mib % 4 != 0 || c.memory_limit_mib / 4 > 15) return std::nullopt;
    unsigned gc = 0;
    if (c.gc_percent != 0) {
      if (c.gc_percent < 5 || (c.gc_percent - 5) % 10 != 0 || (c.gc_percent - 5) / 10 > 7) {
        return std::nullopt;
      }
      gc = (c.gc_percent - 5) / 10;
    }
    w.u8((c.procs - 1) | (c.flush == FlushPolicy::eager ? 8u : 0u) |
         (c.gc_percent != 0 ? 16u : 0u) | (c.fake_os ? 32u : 0u) | ((c.arena_mib - 1) << 6));
    w.u8(gc | (c.reuse == ReusePolicy::owner ? 8u : 0u) | ((c.memory_limit_mib / 4) << 4));
  } else if (!(p.config == HeapConfig{})) {
    return std::nullopt;
  }
  if (p.ops.size() > max_ops) return std::nullopt;
  if (std::count_if(p.ops.begin(), p.ops.end(), is_boundary) >
      static_cast<std::ptrdiff_t>(max_boundaries)) {
    return std::nullopt;
  }
  for (const Op& op : p.ops) {
    if (!write_op(w, p, op)) return std::nullopt;
  }
  return std::move(w.out);
}

}  // namespace spanheap::fuzz
