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

// What a heap does with memory it commits and hands back, under ASan, where the layer keeps poison
// (OsMemory::keeps_poison): it unpoisons what it uses and poisons it again before unreserving.
void use(unsigned char* p, std::size_t n) {
#ifdef SPANHEAP_FUZZ_ASAN
  __asan_unpoison_memory_region(p, n);
#else
  (void)p, (void)n;
#endif
}
void give_back(unsigned char* p, std::size_t n) {
#ifdef SPANHEAP_FUZZ_ASAN
  __asan_poison_memory_region(p, n);
#else
  (void)p, (void)n;
#endif
}

TEST(RecyclingOsMemory, ARecycledRegionReadsZeroAndOnlyWhatIsCommittedAgainIsAccessible) {
  RecyclingOsMemory& os = RecyclingOsMemory::instance();
  os.declare_writes(false);  // every resident page is zeroed (the executor turns declaring on)
  auto* p = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(os.commit(p, 256 * kib));
  use(p, 256 * kib);
  std::memset(p, 0xA5, 256 * kib);
  give_back(p, 256 * kib);
  os.unreserve(p, region_bytes);

  auto* q = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_EQ(q, p) << "the region was not recycled (best fit should return it)";
  ASSERT_TRUE(os.commit(q, 128 * kib));
  use(q, 128 * kib);
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
  use(q + 128 * kib, 512 * kib);
  EXPECT_TRUE(all_zero(q + 128 * kib, 512 * kib));

  // Released memory stays committed and reads zero.
  std::memset(q, 0x5A, 64 * kib);
  os.release(q, 64 * kib);
  EXPECT_TRUE(all_zero(q, 64 * kib));
  give_back(q, 640 * kib);
  os.unreserve(q, region_bytes);
}

#ifdef SPANHEAP_FUZZ_ASAN
// Every byte of a range must be poisoned (each granule's shadow reads "poisoned").
bool all_poisoned(const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) {
    if (__asan_address_is_poisoned(p + i) == 0) return false;
  }
  return true;
}

// The layer keeps poison (OsMemory::keeps_poison): commit hands a fresh range and a recycled one
// over poisoned, with no pass over the shadow for the recycled one; a reservation handed back
// with a page left accessible is not kept, so no later heap inherits unguarded memory.
TEST(RecyclingOsMemory, CommitsComeBackPoisonedAndOnlyPoisonedRangesAreKept) {
  RecyclingOsMemory& os = RecyclingOsMemory::instance();
  ASSERT_TRUE(os.keeps_poison());
  auto* p = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(os.commit(p, 256 * kib));
  EXPECT_TRUE(all_poisoned(p, 256 * kib)) << "a fresh commit must come back poisoned";
  os.unreserve(p, region_bytes);  // as the heap hands it back: poisoned

  auto* q = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_EQ(q, p) << "a region handed back poisoned was not recycled";
  ASSERT_TRUE(os.commit(q, 128 * kib));
  EXPECT_TRUE(all_poisoned(q, 128 * kib)) << "a recycled commit must come back poisoned";
  ASSERT_TRUE(os.commit(q + 128 * kib, 256 * kib));  // half recycled, half fresh
  EXPECT_TRUE(all_poisoned(q + 128 * kib, 256 * kib));
  // One page in the middle left accessible, as a heap that forgot to poison a free page would.
  use(q + 200 * kib, 8 * kib);
  os.unreserve(q, region_bytes);

  // Not kept: what comes back at this address, if anything does, is a fresh mapping, whose
  // range past this commit is PROT_NONE (a segfault, not ASan's use-after-poison).
  auto* r = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(os.commit(r, 64 * kib));
  EXPECT_TRUE(all_poisoned(r, 64 * kib));
  if (r == q) EXPECT_DEATH(read_byte(r + 200 * kib), "SEGV");
  EXPECT_EQ(__asan_address_is_poisoned(q + 384 * kib), 0) << "poison left behind an unmapping";
  os.unreserve(r, region_bytes);
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
  use(p, 512 * kib);
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
  give_back(p, 512 * kib);
  os.unreserve(p, region_bytes);

  auto* q = static_cast<unsigned char*>(os.reserve(region_bytes, align));
  ASSERT_EQ(q, p);
  ASSERT_TRUE(os.commit(q, 512 * kib));
  use(q, 512 * kib);
  EXPECT_TRUE(all_zero(q, 512 * kib)) << "a declared write survived recycling";
  give_back(q, 512 * kib);
  os.unreserve(q, region_bytes);
  os.declare_writes(false);
}

}  // namespace
}  // namespace spanheap::fuzz
