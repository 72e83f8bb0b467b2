// Tests of RecyclingOsMemory: to a heap, a recycled region must look like a fresh reservation
// (reads zero once committed, inaccessible where this heap has not committed it), and released
// memory reads zero.
#include "recycling_os.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "sanitizers.hpp"
#ifdef SPANHEAP_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace spanheap::fuzz {
namespace {

// An odd size, so best fit hands this test's region back to it whatever else the pool holds
// (the executor's arenas are whole MiBs, its metadata chunks 64 KiB).
constexpr std::size_t region_bytes = (std::size_t{1} << 20) + (std::size_t{64} << 10);
constexpr std::size_t align = std::size_t{64} << 10;
constexpr std::size_t kib = 1024;

bool all_zero(const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

unsigned char read_byte(const unsigned char* p) {
  return *static_cast<const volatile unsigned char*>(p);
}

TEST(RecyclingOsMemory, ARecycledRegionReadsZeroAndOnlyWhatIsCommittedAgainIsAccessible) {
  RecyclingOsMemory& os = RecyclingOsMemory::instance();
  os.declare_writes(false);  // every resident page is zeroed (the executor turns declaring on)
  auto* p = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(os.commit(p, 256 * kib));
  std::memset(p, 0xA5, 256 * kib);
  os.unreserve(p, region_bytes);

  auto* q = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_EQ(q, p) << "the region was not recycled (best fit should return it)";
  ASSERT_TRUE(os.commit(q, 128 * kib));
  EXPECT_TRUE(all_zero(q, 128 * kib)) << "a recycled region must read zero, as a fresh one does";
  // Committed by the earlier heap, not by this one: touching it must fail as it would on a fresh
  // reservation (ASan reports the poison; without ASan the page is PROT_NONE).
#ifdef SPANHEAP_FUZZ_ASAN
  EXPECT_DEATH(read_byte(q + 128 * kib), "use-after-poison");
  EXPECT_DEATH(read_byte(q + 256 * kib - 1), "use-after-poison");
#else
  EXPECT_DEATH(read_byte(q + 128 * kib), "");
  EXPECT_DEATH(read_byte(q + 256 * kib - 1), "");
#endif
  EXPECT_DEATH(read_byte(q + 512 * kib), "");  // never committed by anyone

  // Committing the rest makes it accessible, and it reads zero too.
  ASSERT_TRUE(os.commit(q + 128 * kib, 512 * kib));
  EXPECT_TRUE(all_zero(q + 128 * kib, 512 * kib));

  // Released memory stays committed and reads zero.
  std::memset(q, 0x5A, 64 * kib);
  os.release(q, 64 * kib);
  EXPECT_TRUE(all_zero(q, 64 * kib));
  os.unreserve(q, region_bytes);
}

#ifdef SPANHEAP_FUZZ_ASAN
// With declared arena poisoning, a recycled range of an arena reservation stays poisoned when it
// is committed again (the heap poisons it at once anyway); any other reservation is unpoisoned.
TEST(RecyclingOsMemory, DeclaredArenaPoisoningKeepsOnlyArenaCommitsPoisoned) {
  RecyclingOsMemory& os = RecyclingOsMemory::instance();
  os.declare_arena_poisoning(true);
  for (const std::size_t a : {RecyclingOsMemory::arena_align, align}) {
    auto* p = static_cast<unsigned char*>(os.reserve(region_bytes, a));
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(os.commit(p, 128 * kib));
    os.unreserve(p, region_bytes);
    auto* q = static_cast<unsigned char*>(os.reserve(region_bytes, a));
    ASSERT_EQ(q, p) << "the region was not recycled (best fit should return it)";
    ASSERT_TRUE(os.commit(q, 128 * kib));
    const bool arena = a == RecyclingOsMemory::arena_align;
    EXPECT_EQ(__asan_region_is_poisoned(q, 128 * kib) == q, arena) << a;
    EXPECT_EQ(__asan_region_is_poisoned(q + 128 * kib - 1, 1) != nullptr, arena) << a;
    if (arena) __asan_unpoison_memory_region(q, 128 * kib);  // as the heap's teardown does
    os.unreserve(q, region_bytes);
  }
  os.declare_arena_poisoning(false);
}
#endif

// With declared writes, release and recycling zero exactly what was declared, so a heap that
// writes only there still sees zeros everywhere.
TEST(RecyclingOsMemory, DeclaredWritesAreZeroedOnReleaseAndOnRecycling) {
  RecyclingOsMemory& os = RecyclingOsMemory::instance();
  os.declare_writes(true);
  auto* p = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(os.commit(p, 512 * kib));
  // Two objects: one inside the range released below (its page straddles the range's start),
  // one outside it that stays live across the release.
  std::memset(p + 60 * kib, 0x11, 8 * kib);
  os.note_written(p + 60 * kib, 8 * kib);
  std::memset(p + 300 * kib + 5, 0x22, 100);
  os.note_written(p + 300 * kib + 5, 100);
  os.release(p + 64 * kib, 128 * kib);
  EXPECT_TRUE(all_zero(p + 64 * kib, 4 * kib)) << "released memory must read zero";
  EXPECT_EQ(p[60 * kib], 0x11) << "release zeroed bytes outside the released range";
  EXPECT_EQ(p[300 * kib + 5], 0x22) << "release zeroed a declared write outside its range";
  // A release inside one declared write splits it: both ends stay written (and are zeroed when
  // the region is recycled below), the middle reads zero.
  std::memset(p + 400 * kib, 0x33, 64 * kib);
  os.note_written(p + 400 * kib, 64 * kib);
  os.release(p + 420 * kib, 12 * kib);
  EXPECT_TRUE(all_zero(p + 420 * kib, 12 * kib)) << "released memory must read zero";
  EXPECT_EQ(p[420 * kib - 1], 0x33) << "release zeroed the write before its range";
  EXPECT_EQ(p[432 * kib], 0x33) << "release zeroed the write after its range";
  EXPECT_EQ(p[464 * kib - 1], 0x33);
  os.unreserve(p, region_bytes);

  auto* q = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_EQ(q, p);
  ASSERT_TRUE(os.commit(q, 512 * kib));
  EXPECT_TRUE(all_zero(q, 512 * kib)) << "a declared write survived recycling";
  os.unreserve(q, region_bytes);
  os.declare_writes(false);
}

}  // namespace
}  // namespace spanheap::fuzz
