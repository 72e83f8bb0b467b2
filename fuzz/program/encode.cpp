// Encoding a Program back into bytes (program.hpp): the inverse of decode() in program.cpp, which
// program_test.cpp checks. The byte layout is documented in docs/fuzzing.md.
#include "program.hpp"

#include <algorithm>
#include <bit>
#include <type_traits>

#include "program_layout.hpp"

namespace spanheap::fuzz {
using namespace codec;
namespace {

// --- field encoders: each write_* inverts a read_* of program.cpp (false: value not encodable) ---

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

// read_magnitude's layout (program.cpp): the bit length, then that many low bytes.
void write_magnitude(Writer& w, std::uint64_t v) {
  const auto len = static_cast<unsigned>(std::bit_width(v));
  w.u8(len);
  for (unsigned i = 0; i < (len + 7) / 8; ++i) w.u8(static_cast<unsigned>((v >> (8 * i)) & 0xff));
}

bool write_proc(Writer& w, const Program& p, unsigned proc) {
  if (!uses_procs(p.target)) return proc == via_heap;
  if (proc == via_heap) {
    w.u8(facade_proc_bits);
    return true;
  }
  if (proc >= p.config.procs) return false;
  w.u8(proc);
  return true;
}

bool write_align(Writer& w, std::size_t align) {
  if (!std::has_single_bit(align) || align > page_size) return false;
  w.u8(static_cast<unsigned>(std::countr_zero(align)));
  return true;
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

// --- operations ---------------------------------------------------------------------------------

bool write_alloc(Writer& w, const Program& p, const Alloc& op) {
  if (!write_proc(w, p, op.proc)) return false;
  if (!(p.target == Target::page_heap ? write_pages_size(w, op.size) : write_size(w, op.size))) {
    return false;
  }
  return write_align(w, op.align);
}

bool write_bad_free(Writer& w, const Program& p, const BadFree& op) {
  const bool interior =
      op.kind == BadKind::pending_interior || op.kind == BadKind::reclaimed_interior;
  const bool doubled = op.kind == BadKind::double_pending || op.kind == BadKind::double_reclaimed;
  // A double free's offset has bit 15 clear: set, it would decode as an interior kind.
  if ((interior || doubled) && op.offset >= freed_interior_bit) return false;
  const BadKind written = op.kind == BadKind::pending_interior     ? BadKind::double_pending
                          : op.kind == BadKind::reclaimed_interior ? BadKind::double_reclaimed
                                                                   : op.kind;
  w.u8(static_cast<unsigned>(written));
  if (!write_proc(w, p, op.proc) || op.pick > 255 || op.offset > 0xffff) return false;
  w.u8(op.pick);
  w.u16(static_cast<unsigned>(op.offset | (interior ? freed_interior_bit : 0u)));
  return true;
}

bool write_bad_alloc(Writer& w, const Program& p, const BadAlloc& op) {
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
}

bool write_size_query(Writer& w, const SizeQuery& op) {
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
}

bool write_pacing_query(Writer& w, const PacingQuery& op) {
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
          return write_alloc(w, p, op);
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
          return write_bad_free(w, p, op);
        } else if constexpr (std::is_same_v<T, BadAlloc>) {
          return write_bad_alloc(w, p, op);
        } else if constexpr (std::is_same_v<T, FailOs>) {
          if (op.n > 255) return false;
          w.u8(static_cast<unsigned>(op.fault));
          w.u8(op.n);
          return true;
        } else if constexpr (std::is_same_v<T, SizeQuery>) {
          return write_size_query(w, op);
        } else if constexpr (std::is_same_v<T, PacingQuery>) {
          return write_pacing_query(w, op);
        } else if constexpr (std::is_same_v<T, Corrupt>) {
          return false;
        } else {
          return true;  // no operands
        }
      },
      any);
}

}  // namespace

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
