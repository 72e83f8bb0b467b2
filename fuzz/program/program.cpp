// Decoding bytes into a Program (program.hpp). The byte layout is documented in docs/fuzzing.md;
// decode() here and encode() in encode.cpp are its only definition (each read_* here has a
// matching write_* there), and program_test.cpp checks that encode() inverts decode().
#include "program.hpp"

#include <algorithm>
#include <bit>

#include "byte_reader.hpp"
#include "program_layout.hpp"

namespace spanheap::fuzz {
using namespace codec;
namespace {

// --- field decoders: each read_* has a matching write_* in encode.cpp ---------------------------

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

// The proc byte of the targets that name Ps: its two top bits both set (a quarter of the values)
// route the call through the facade (via_heap: the calling thread's own P and the library's fast
// paths), so that those paths meet explicit Ps' frees, stale Ps and cycles; any other value names
// P (byte % procs). Inputs written when every byte named a P keep their meaning when their proc
// bytes are below 0xC0, as every generated seed's are.
unsigned read_proc(ByteReader& r, const Program& p) {
  if (!uses_procs(p.target)) return via_heap;
  const unsigned b = r.u8();
  return (b & facade_proc_bits) == facade_proc_bits ? via_heap : b % p.config.procs;
}

// Alignment: a power of two up to the page size.
std::size_t read_align(ByteReader& r) { return std::size_t{1} << (r.u8() % 14); }

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

// Page-heap sizes (program_layout.hpp: pages_range says why the ranges are what they are).
std::size_t read_pages_size(ByteReader& r) {
  const unsigned p = r.u16();
  const unsigned d = r.u8();
  const std::size_t pages = 1 + (p & (pages_range(p >> pages_class_shift) - 1));
  const std::size_t shortfall = (d & 0x80) ? 0 : std::size_t{d} * 32;
  return pages * page_size - shortfall;
}

// --- operations ---------------------------------------------------------------------------------

Alloc read_alloc(ByteReader& r, const Program& p) {
  Alloc op;
  op.proc = read_proc(r, p);
  op.size = p.target == Target::page_heap ? read_pages_size(r) : read_size(r);
  op.align = read_align(r);
  return op;
}

BadFree read_bad_free(ByteReader& r, const Program& p) {
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

// Odd selector: a size past max_alloc_size. Even: an alignment that is not a power of two
// (0 reads as 3) or is a power of two above max_alloc_size (any power of two read is scaled
// past it: smaller ones are valid alignments).
BadAlloc read_bad_alloc(ByteReader& r, const Program& p) {
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

SizeQuery read_size_query(ByteReader& r) {
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

PacingQuery read_pacing_query(ByteReader& r) {
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

Op read_op(ByteReader& r, const Program& p, std::size_t index) {
  switch (index) {
    case op_index<Alloc>:
      return read_alloc(r, p);
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
    case op_index<BadFree>:
      return read_bad_free(r, p);
    case op_index<BadAlloc>:
      return read_bad_alloc(r, p);
    case op_index<FailOs>: {
      FailOs op;
      op.fault = static_cast<OsFault>(r.u8() % 3);
      op.n = r.u8();
      return op;
    }
    case op_index<SizeQuery>:
      return read_size_query(r);
    case op_index<PacingQuery>:
      return read_pacing_query(r);
    default:
      return Verify{};
  }
}

}  // namespace

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

}  // namespace spanheap::fuzz
