// ByteReader: the fuzz input as a stream of small integers. Every fuzz target decodes its bytes
// through this one reader, so the same file means the same program under libFuzzer, AFL++ and the
// replay binaries (clang's FuzzedDataProvider is only shipped with libFuzzer builds and reads
// integers from the end of the buffer, which would tie the encoding to that engine).
//
// Contract: reading never fails. Past the end every read returns 0, so any byte string (even the
// empty one) decodes to a program, and truncating an input only truncates its tail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace spanheap::fuzz {

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  bool empty() const noexcept { return pos_ >= bytes_.size(); }
  std::size_t consumed() const noexcept { return pos_ < bytes_.size() ? pos_ : bytes_.size(); }

  std::uint8_t u8() noexcept { return pos_ < bytes_.size() ? bytes_[pos_++] : (++pos_, 0); }
  // Little-endian, so a short tail reads as a small number rather than a huge one.
  std::uint16_t u16() noexcept {
    const unsigned lo = u8();
    return static_cast<std::uint16_t>(lo | (unsigned{u8()} << 8));
  }
  std::uint32_t u24() noexcept {
    const std::uint32_t lo = u16();
    return lo | (std::uint32_t{u8()} << 16);
  }
  std::uint32_t u32() noexcept {
    const std::uint32_t lo = u16();
    return lo | (std::uint32_t{u16()} << 16);
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

}  // namespace spanheap::fuzz
