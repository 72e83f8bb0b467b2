// span: see span.hpp.
#include "span.hpp"

#include <atomic>
#include <cstring>
#include <thread>

#include "heap_state.hpp"
#include "poison.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "stats.hpp"

namespace spanheap::detail {

Span empty_span;

namespace {

inline unsigned words_for(std::uint32_t nelems) noexcept { return (nelems + 63) / 64; }

// Clears the bitmaps for a new use of the struct with s.nelems slots: the words its previous uses
// may have set (Span::bit_words) and the words of this one.
void clear_bits(Span& s) noexcept {
  const unsigned words = words_for(s.nelems);
  const unsigned dirty = s.bit_words > words ? s.bit_words : words;
  s.bit_words = static_cast<std::uint8_t>(words);
  for (unsigned w = 0; w < dirty; w++) {
    s.bits[w].alloc.store(0, std::memory_order_relaxed);
    s.bits[w].free.store(0, std::memory_order_relaxed);
    s.remote_bits[w].store(0, std::memory_order_relaxed);
    s.reclaimed_bits[w].store(0, std::memory_order_relaxed);
  }
  s.set_remote_pending(false);
}

// Pending frees of word w: the owner's and the other Ps'. A slot in both counts twice, as the
// free counters count it until the merge finds it.
template <bool hw = false>
inline std::uint32_t pending_in_word(const Span& s, unsigned w, bool remote) noexcept {
  return static_cast<std::uint32_t>(
      count_bits<hw>(s.bits[w].free.load(std::memory_order_relaxed)) +
      (remote ? count_bits<hw>(s.remote_bits[w].load(std::memory_order_relaxed)) : 0));
}

}  // namespace

void span_init_small(Span& s, unsigned span_class) noexcept {
  const SizeClass& sc = size_class(span_class);
  s.span_class.store(static_cast<std::uint8_t>(span_class), std::memory_order_relaxed);
  s.elem_size = sc.size;
  s.nelems = sc.nelems;
  s.div_mul = sc.div_mul;
  s.slot_inv = sc.slot_inv;
  s.slot_shift = sc.slot_shift;
  s.alloc_count = 0;
  s.free_index.store(0, std::memory_order_relaxed);
  clear_bits(s);
  refill_alloc_cache(s, 0);
  s.state.store(SpanState::in_use, std::memory_order_release);
}

void span_init_large(Span& s) noexcept {
  s.span_class.store(0, std::memory_order_relaxed);
  s.elem_size = s.bytes();
  s.nelems = 1;
  s.div_mul = 0;
  s.slot_inv = 0;
  s.slot_shift = 0;
  clear_bits(s);
  // The single object is allocated at once: free_index = alloc_count = 1 (INV-A2 for large).
  s.alloc_count = 1;
  s.free_index.store(1, std::memory_order_relaxed);
  s.alloc_cache.store(0, std::memory_order_relaxed);
  s.state.store(SpanState::in_use, std::memory_order_release);
}

std::uint32_t next_free_index(Span& s) noexcept {
  std::uint32_t i = s.free_index.load(std::memory_order_relaxed);
  const std::uint32_t n = s.nelems;
  if (i >= n) return n;
  std::uint64_t cache = s.alloc_cache.load(std::memory_order_relaxed);
  // At a word's first slot the cache may not hold that word yet: the fast path leaves it empty
  // when it hands out a word's last slot (INV-A3).
  if (cache == 0 && i % 64 == 0) {
    refill_alloc_cache(s, i / 64);
    cache = s.alloc_cache.load(std::memory_order_relaxed);
  }
  unsigned k = cache == 0 ? 64 : static_cast<unsigned>(__builtin_ctzll(cache));
  while (k == 64) {
    i = (i + 64) & ~std::uint32_t{63};
    if (i >= n) {
      s.free_index.store(n, std::memory_order_release);
      return n;
    }
    refill_alloc_cache(s, i / 64);
    cache = s.alloc_cache.load(std::memory_order_relaxed);
    k = cache == 0 ? 64 : static_cast<unsigned>(__builtin_ctzll(cache));
  }
  const std::uint32_t r = i + k;  // < n: the cache holds no bit past nelems
  s.alloc_cache.store((cache >> k) >> 1, std::memory_order_relaxed);
  i = r + 1;
  if (i % 64 == 0 && i != n) refill_alloc_cache(s, i / 64);
  // Publishing r+1 makes slot r "allocated" for freers; the caller allocates r right away.
  s.free_index.store(i, std::memory_order_release);
  return r;
}

std::uint32_t first_free_slot(const Span& s, std::uint32_t from) noexcept {
  for (std::uint32_t w = from / 64; w < words_for(s.nelems); w++) {
    std::uint64_t free = ~s.bits[w].alloc.load(std::memory_order_relaxed) & ~mask_below(from, w);
    if (free != 0) {
      const std::uint32_t i = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(free));
      return i < s.nelems ? i : s.nelems;
    }
  }
  return s.nelems;
}

namespace {

// The words of sweep_bits (below), counting with count_bits<hw>; returns the objects reclaimed.
template <bool hw>
std::uint32_t sweep_words(HeapState& heap, Span& s,
                          std::uint64_t (&freed_slots)[bitmap_words]) noexcept {
  const std::uint32_t n = s.nelems;
  const std::uint32_t fi = s.free_index.load(std::memory_order_relaxed);
  std::uint32_t nfreed = 0;
  const unsigned nwords = words_for(n);
  for (unsigned w = 0; w < nwords; w++) {
    const std::uint64_t valid = mask_below(n, w);
    const std::uint64_t allocated =
        (s.bits[w].alloc.load(std::memory_order_relaxed) | mask_below(fi, w)) & valid;
    const std::uint64_t pending = s.bits[w].free.load(std::memory_order_relaxed);
    // INV-S6: a sweep or collection sees the other Ps' frees merged (merge_remote_frees).
    SPANHEAP_DCHECK(&heap, s.remote_bits[w].load(std::memory_order_relaxed) == 0,
                    "unmerged remote frees at a sweep or collection (INV-S6)");
    // free() only records frees of allocated slots; anything else is corrupted metadata.
    SPANHEAP_CHECK(&heap, (pending & ~allocated) == 0, "pending free of an unallocated slot");
    const std::uint64_t dead = pending & allocated;
    const std::uint64_t live = allocated & ~dead;
    s.bits[w].alloc.store(live, std::memory_order_relaxed);
    s.bits[w].free.store(0, std::memory_order_relaxed);
    s.reclaimed_bits[w].store(s.reclaimed_bits[w].load(std::memory_order_relaxed) | dead,
                              std::memory_order_relaxed);
    freed_slots[w] = dead;
    nfreed += count_bits<hw>(dead);
  }
  return nfreed;
}

}  // namespace

std::uint32_t sweep_bits(HeapState& heap, Span& s,
                         std::uint64_t (&freed_slots)[bitmap_words]) noexcept {
  const std::uint32_t nfreed = cpu_has_popcnt() ? sweep_words<true>(heap, s, freed_slots)
                                                : sweep_words<false>(heap, s, freed_slots);
  // C18: a sweep never increases the allocation count. The new count is derived rather than
  // counted (one population count a word instead of two: x86-64's baseline has no POPCNT); the
  // debug tier recounts the bits (INV-A2) once free_index is reset below.
  SPANHEAP_CHECK(&heap, nfreed <= s.alloc_count, "sweep increased allocation count (C18)");
  s.alloc_count -= nfreed;
  // Release: a racy reader (find_object) that sees free_index == 0 also sees the new bits.
  s.free_index.store(0, std::memory_order_release);
  SPANHEAP_DCHECK(&heap, count_allocated(s) == s.alloc_count,
                  "alloc_count out of sync with the allocation bits (INV-A2)");
  refill_alloc_cache(s, 0);
  if (nfreed != 0) s.need_zero.store(true, std::memory_order_relaxed);
  return nfreed;
}

void SpanLock::wait() noexcept {
  for (unsigned spins = 0; span_.free_lock.load(std::memory_order_relaxed); spins++)
    if (spins > 64) std::this_thread::yield();
}

namespace {

template <bool hw>
bool worth_collecting_words(const Span& s) noexcept {
  const std::uint32_t want = collect_threshold(s.nelems);
  std::uint32_t pending = 0;
  const unsigned nwords = words_for(s.nelems);
  if (SPANHEAP_UNLIKELY(s.remote_pending())) {
    for (unsigned w = 0; w < nwords && pending < want; w++)
      pending += pending_in_word<hw>(s, w, true);
  } else {
    for (unsigned w = 0; w < nwords && pending < want; w++)
      pending += pending_in_word<hw>(s, w, false);
  }
  return pending >= want;
}

}  // namespace

bool worth_collecting(const Span& s) noexcept {
  return cpu_has_popcnt() ? worth_collecting_words<true>(s) : worth_collecting_words<false>(s);
}

unsigned merge_remote_frees(Span& s, std::uint64_t (&raced)[bitmap_words]) noexcept {
  // A P's own frees never cost it a scan of the remote bits (nor `raced` a clearing).
  if (!s.remote_pending()) return 0;
  s.set_remote_pending(false);
  for (unsigned w = 0; w < bitmap_words; w++) raced[w] = 0;
  unsigned n = 0;
  for (unsigned w = 0; w < words_for(s.nelems); w++) {
    const std::uint64_t theirs = s.remote_bits[w].load(std::memory_order_relaxed);
    if (theirs == 0) continue;
    const std::uint64_t mine = s.bits[w].free.load(std::memory_order_relaxed);
    raced[w] = mine & theirs;
    n += popcount64(raced[w]);
    s.bits[w].free.store(mine | theirs, std::memory_order_relaxed);
    s.remote_bits[w].store(0, std::memory_order_relaxed);
  }
  return n;
}

void report_raced_double_frees(HeapState& heap, const Span& s,
                               const std::uint64_t (&raced)[bitmap_words], unsigned n) {
  // Both frees were counted; the slot is reclaimed once (Stats subtract these).
  heap.counters.raced_double_frees.fetch_add(n, std::memory_order_relaxed);
  heap.counters.raced_double_free_bytes.fetch_add(std::uint64_t{n} * s.elem_size,
                                                  std::memory_order_relaxed);
  for (unsigned w = 0; w < bitmap_words; w++) {
    for (std::uint64_t bits = raced[w]; bits != 0; bits &= bits - 1) {
      const unsigned i = w * 64 + static_cast<unsigned>(__builtin_ctzll(bits));
      void* obj = reinterpret_cast<void*>(s.start + i * s.elem_size);
      report(&heap, ErrorKind::double_free, obj,
             "object freed twice at once, by the P caching its span and by another P (found "
             "when the owner merged the other Ps' frees; reclaimed once) (ptr={}, span={:#x}, "
             "class={}, size={})",
             obj, s.start, s.cls(), s.elem_size);
    }
  }
}

std::uint32_t span_collect(HeapState& heap, Cache& by, Span& s) {
  std::uint64_t freed[bitmap_words];
  std::uint64_t raced[bitmap_words];
  std::uint32_t nfreed;
  unsigned nraced;
  {
    SpanLock lock(s);
    nraced = merge_remote_frees(s, raced);
    nfreed = sweep_bits(heap, s, freed);
  }
  if (SPANHEAP_UNLIKELY(nraced != 0)) report_raced_double_frees(heap, s, raced, nraced);
  if (nfreed == 0) return 0;
  // The debug options' test here, not in the call: collections run on the allocation slow path.
  if (heap.options.debug.clobber_freed || heap.options.debug.poison_freed)
    scrub_reclaimed(heap, s, freed);
  bump(by.collections, 1);
  bump(by.collected_objects, nfreed);
  bump(by.collected_bytes, std::uint64_t{nfreed} * s.elem_size);
  return nfreed;
}

void scrub_reclaimed(HeapState& heap, Span& s,
                     const std::uint64_t (&freed_slots)[bitmap_words]) noexcept {
  if (!heap.options.debug.clobber_freed && !heap.options.debug.poison_freed) return;
  for (unsigned w = 0; w < words_for(s.nelems); w++) {
    for (std::uint64_t bits = freed_slots[w]; bits != 0; bits &= bits - 1) {
      const unsigned i = w * 64 + static_cast<unsigned>(__builtin_ctzll(bits));
      void* slot = reinterpret_cast<void*>(s.start + i * s.elem_size);
      if (heap.options.debug.clobber_freed) {
        unpoison_memory(heap, slot, s.elem_size);
        std::memset(slot, clobber_byte, s.elem_size);
      }
      poison_memory(heap, slot, s.elem_size);
    }
  }
}

std::uint32_t count_allocated(const Span& s) noexcept {
  const std::uint32_t fi = s.free_index.load(std::memory_order_relaxed);
  std::uint32_t count = 0;
  for (unsigned w = 0; w < words_for(s.nelems); w++) {
    const std::uint64_t allocated =
        (s.bits[w].alloc.load(std::memory_order_relaxed) | mask_below(fi, w)) &
        mask_below(s.nelems, w);
    count += static_cast<std::uint32_t>(popcount64(allocated));
  }
  return count;
}

std::uint32_t count_pending(const Span& s) noexcept {
  std::uint32_t count = 0;
  for (unsigned w = 0; w < words_for(s.nelems); w++) count += pending_in_word(s, w, true);
  return count;
}

}  // namespace spanheap::detail
