// heap: see heap.hpp (the public facade is in facade.cpp).
#include "heap.hpp"

#include <spanheap/spanheap.hpp>

#include <algorithm>

#include "atomic_read.hpp"
#include "cache.hpp"
#include "central.hpp"
#include "free.hpp"
#include "home_arena.hpp"
#include "pacing.hpp"
#include "page_heap.hpp"
#include "page_map.hpp"
#include "poison.hpp"
#include "proc.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "span.hpp"
#include "stats.hpp"
#include "sweep.hpp"
#include "sweeper.hpp"
#include "validate.hpp"
#include "world.hpp"

namespace spanheap::detail {

namespace {

// Enters the calling thread's affinity P `p` (last_used_proc.p) for a call: through its binding
// (`me` receives the thread's record: leave with leave_bound(me)), else with a CAS from idle
// (`me` is nullptr: leave with leave_call), kept only while the world is not stopping (keep_taken).
// The default binding is tested first, so that its calls take one compare to reach their entry.
[[gnu::always_inline]] inline bool enter_own(HeapState& heap, ProcState& p,
                                             ThreadRecord*& me) noexcept {
  const ProcBinding mode = last_used_proc.bound();
  me = this_thread_record;
  if (SPANHEAP_LIKELY(mode == ProcBinding::automatic)) {
    if (SPANHEAP_LIKELY(enter_bound(ProcBinding::automatic, p, me))) return true;
  } else if (mode == ProcBinding::fenced) {
    if (enter_bound(ProcBinding::fenced, p, me)) return true;
  }
  me = nullptr;
  ProcStatus seen = ProcStatus::idle;
  return p.status().compare_exchange_strong(seen, ProcStatus::running, std::memory_order_seq_cst,
                                            std::memory_order_relaxed) &&
         keep_taken(heap.world, p);
}

// The common case of acquire_any_proc_slow, inlined: the thread's last P is bound to it or free.
inline ProcState& acquire_fast(HeapState& heap) {
  if (SPANHEAP_LIKELY(last_used_proc.uid() == heap.uid)) {
    ProcState& p = *last_used_proc.state;
    ThreadRecord* me;
    // A stale cache (INV-B1: only a P taken with the CAS can be stale) is flushed by the one
    // caller, allocate_holding or free_holding, first thing.
    if (SPANHEAP_LIKELY(enter_own(heap, p, me))) return p;
  }
  return acquire_any_proc_slow(heap);
}

inline ProcState& acquire_for_call(HeapState& heap, int proc) {
  return proc < 0 ? acquire_fast(heap) : acquire_proc(heap, static_cast<unsigned>(proc));
}

void note_slow_allocation(HeapState& heap) {
  const std::uint64_t trigger = heap.pacer.trigger.load(std::memory_order_relaxed);
  if (trigger != 0 && heap.pacer.allocated.load(std::memory_order_relaxed) >= trigger)
    heap.pacer.requested.store(true, std::memory_order_relaxed);
}

Span* alloc_large(HeapState& heap, std::size_t size, std::size_t align) {
  std::size_t npages = (size + page_size - 1) >> page_shift;
  if (npages == 0) npages = 1;
  const std::size_t bytes = npages << page_shift;
  deduct_sweep_credit(heap, bytes);
  Span* s = page_alloc(heap, npages, sweep_one, std::max(align, page_size));
  if (s == nullptr) return nullptr;
  span_init_large(*s);
  // Unpoisoned by on_allocate_debug, as every object is (a second pass here doubled the shadow
  // writes of every large allocation).
  // Under owner reuse page_alloc charged the pages, and free_large_span's page_free credits them.
  if (heap.options.reuse == ReusePolicy::next_cycle)
    heap.pacer.allocated.fetch_add(bytes, std::memory_order_relaxed);
  Central& central = heap.central[0];
  {
    LockGuard g(central.mu);
    central_put_swept(heap, central, s);  // large spans live on central[0]'s full lists
  }
  note_slow_allocation(heap);
  return s;
}

// Debug hooks at allocation: the write-after-free check and ASan unpoisoning.
void on_allocate_debug(HeapState& heap, Span* s, void* obj) {
  const auto i = slot_of(*s, reinterpret_cast<std::uintptr_t>(obj));
  unpoison_memory(heap, obj, s->elem_size);
  if (heap.options.debug.clobber_freed && !s->is_large() && slot_reclaimed(*s, i)) {
    // Word by word (objects are at least 8-byte aligned and sized), bytes only to name the first
    // one that differs.
    const auto* bytes = static_cast<const unsigned char*>(obj);
    constexpr std::uint64_t pattern = 0x0101010101010101ull * clobber_byte;
    for (std::size_t k = 0; k < s->elem_size; k += 8) {
      std::uint64_t word;
      std::memcpy(&word, bytes + k, 8);
      if (SPANHEAP_LIKELY(word == pattern)) continue;
      std::size_t b = k;
      while (bytes[b] == clobber_byte) b++;
      report(&heap, ErrorKind::corruption, obj,
             "write after free: byte {} of a reclaimed {}-byte object was modified (ptr={}, "
             "span={:#x}, class={})",
             b, s->elem_size, obj, s->start, s->cls());
      break;
    }
  }
}

// The debug options' work at allocation (HeapState::allocation_hooks says if any is on).
void on_allocate_hooks(HeapState& heap, ProcState& p, Span* span, void* obj, std::size_t elem) {
  if (heap.options.debug.clobber_freed || heap.options.debug.poison_freed)
    on_allocate_debug(heap, span, obj);
  if (heap.options.debug.collect_every != 0) {
    p.cache.collect_every_bytes += elem;
    if (p.cache.collect_every_bytes >= heap.options.debug.collect_every) {
      p.cache.collect_every_bytes = 0;
      heap.pacer.requested.store(true, std::memory_order_relaxed);
    }
  }
}

// Everything an allocation does once it holds P `p`: the stale cache's flush (when the fast path
// took the P), the cache or its slow paths, debug hooks; releases `p`, then the
// out-of-memory retry and pacing. Out of line: the fast paths stay small leaf functions.
[[gnu::noinline]] void* allocate_holding(HeapState& heap, ProcState& p, int proc, unsigned c,
                                         std::size_t size, std::size_t align, bool retried) {
  if (SPANHEAP_UNLIKELY(cache_is_stale(heap.sg(), p.cache))) cache_flush(heap, p, FlushKind::lazy);
  void* obj = nullptr;
  std::size_t elem = 0;
  Span* span = nullptr;
  if (SPANHEAP_LIKELY(c != 0)) {
    // Counted by the slow path that loaded its word into the alloc cache, or by this one.
    if (!cache_alloc_fast(p.cache, c, obj, elem)) {
      obj = cache_alloc_slow(heap, p, c);
      note_slow_allocation(heap);
    }
    span = p.cache.alloc[c].load(std::memory_order_relaxed);
    elem = span->elem_size;
  } else {
    // The span as alloc_large returns it, not looked up again from the object: no other thread
    // can free an object not yet returned, so the struct stays this span's.
    span = alloc_large(heap, size, align);
    if (span != nullptr) {
      obj = reinterpret_cast<void*>(span->start);
      elem = span->elem_size;
      bump(p.cache.allocs, 1);
      bump(p.cache.alloc_bytes, elem);
    }
  }
  if (SPANHEAP_LIKELY(obj != nullptr)) {
    if (SPANHEAP_UNLIKELY(heap.home->arena.load(std::memory_order_relaxed) == &no_arena))
      publish_home_arena(heap, *span->arena);
    if (SPANHEAP_UNLIKELY(heap.allocation_hooks)) on_allocate_hooks(heap, p, span, obj, elem);
  }
  if (proc < 0) {
    leave_call(heap, p);
  } else {
    release_proc(p);
  }
  if (SPANHEAP_UNLIKELY(obj == nullptr) && heap.options.memory_limit != 0 &&
      heap.options.gc_percent != 0 && !retried) {
    // At the memory limit with automatic cycles on: run a cycle (freed objects become free
    // pages once swept), then try once more before reporting.
    collect(heap);
    return heap_allocate(heap, proc, size, align, /*retried=*/true);
  }
  if (SPANHEAP_UNLIKELY(obj == nullptr)) {
    report(&heap, ErrorKind::out_of_memory, nullptr, "cannot allocate {} bytes (align {}): {}",
           size, align,
           heap.options.memory_limit != 0 ? "the memory limit or the OS refused more memory"
                                          : "the OS refused more memory");
    return nullptr;
  }
  if (SPANHEAP_UNLIKELY(heap.pacer.requested.load(std::memory_order_relaxed))) maybe_collect(heap);
  return obj;
}

// The fast path's exits, each a tail call with few arguments, so that the fast path itself saves
// no register and builds no frame.
[[gnu::noinline]] void* allocate_holding_default(HeapState& heap, ProcState& p, unsigned c,
                                                 std::size_t size, std::size_t align) {
  return allocate_holding(heap, p, -1, c, size, align, /*retried=*/false);
}

[[gnu::noinline]] void* leave_then_return(HeapState& heap, ProcState& p, void* obj) {
  leave_call(heap, p);
  if (SPANHEAP_UNLIKELY(heap.pacer.requested.load(std::memory_order_relaxed))) maybe_collect(heap);
  return obj;
}

// The fast path's exit when the alloc cache is empty: most often the span has free slots in a later
// bitmap word, and loading it is all the slow path would do; else, under owner reuse, a collection
// of the span or of one the P owns. Done here, past the fast path's checks, it skips the general
// slow path's frame, its second try of the alloc cache and its pacing look (the pacer is charged
// when spans come from central or the page heap). Anything else continues in allocate_holding.
[[gnu::always_inline]] inline void* next_word(HeapState& heap, ProcState& p, unsigned c,
                                              std::size_t size, std::size_t align,
                                              ThreadRecord* me) {
  Span* s = p.cache.alloc[c].load(std::memory_order_relaxed);
  SPANHEAP_DCHECK(&heap, !cache_is_stale(heap.sg(), p.cache),
                  "allocation from a stale cache (INV-G2: a P allocates only after its flush)");
  // INV-C as the counters keep it (cache_alloc_slow's check, always on): the slots left in the
  // alloc cache were counted when they entered it, and the next word's count below would count
  // them again. Debug tier here: this exit runs once a word.
  SPANHEAP_DCHECK(&heap, s->alloc_cache.load(std::memory_order_relaxed) == 0,
                  "allocation next-word path with slots left in the alloc cache (INV-C: they "
                  "would be counted twice)");
  // A span whose last slot the fast path handed out has free_index == nelems; so has empty_span.
  const std::uint32_t i =
      s->free_index.load(std::memory_order_relaxed) < s->nelems ? next_free_index(*s) : s->nelems;
  void* obj;
  if (SPANHEAP_LIKELY(i < s->nelems)) {
    s->alloc_count++;
    SPANHEAP_CHECK(&heap, s->alloc_count <= s->nelems, "s.allocCount > s.nelems (C4)");
    obj = reinterpret_cast<void*>(s->start + i * s->elem_size);
    // The object and the rest of its word, which next_free_index left in the alloc cache.
    count_slow_allocation(p.cache, *s, 1);
    prefetch_next_slot(*s, i + 1, s->alloc_cache.load(std::memory_order_relaxed), s->elem_size);
  } else {
    if (heap.options.reuse != ReusePolicy::owner)
      return allocate_holding_default(heap, p, c, size, align);
    obj = cache_alloc_slow(heap, p, c, /*may_refill=*/false);  // counts it
    if (obj == nullptr) return allocate_holding_default(heap, p, c, size, align);
  }
  if (me == nullptr) return leave_then_return(heap, p, obj);
  leave_bound(me);
  return obj;
}

// The fast path's exit above, as one function for the one-load lookup's allocations (alignment 16),
// which looks the class up again (a sixth argument, or the class kept for the call, cost the fast
// path a register), and one for the others.
[[gnu::noinline]] void* allocate_next_word(HeapState& heap, ProcState& p, std::size_t size,
                                           ThreadRecord* me) {
  return next_word(heap, p, size_to_class16(size), size, 16, me);
}
[[gnu::noinline]] void* allocate_next_word_aligned(HeapState& heap, ProcState& p, unsigned c,
                                                   std::size_t size, std::size_t align,
                                                   ThreadRecord* me) {
  return next_word(heap, p, c, size, align, me);
}

[[gnu::noinline, gnu::cold]] void report_bad_free(HeapState& heap, const FreeResult& r, void* ptr) {
  if (r.span != 0) {
    report(&heap, r.kind, ptr, "{} (ptr={}, offset={}, span={:#x}, class={}, size={})", r.cause,
           ptr, r.offset, r.span, r.cls, r.size);
  } else {
    report(&heap, r.kind, ptr, "{} (ptr={})", r.cause, ptr);
  }
}

// Everything a free does once it holds P `p`: the stale cache's flush (when the fast path took the
// P), the free, the release of `p`, and the report of a bad free.
[[gnu::noinline]] void free_holding(HeapState& heap, ProcState& p, int proc, const Arena& arena,
                                    void* ptr) {
  bump(p.cache.held_frees, 1);
  if (SPANHEAP_UNLIKELY(cache_is_stale(heap.sg(), p.cache))) cache_flush(heap, p, FlushKind::lazy);
  FreeResult r;
  const bool ok = free_with_proc(heap, p, arena, reinterpret_cast<std::uintptr_t>(ptr), r);
  if (proc < 0) {
    leave_call(heap, p);
  } else {
    release_proc(p);
  }
  if (SPANHEAP_UNLIKELY(!ok)) report_bad_free(heap, r, ptr);
}

// free_holding for a P entered through its binding (`me`, the bound fast path's): a bound P's
// cache is never stale (INV-B1), and leaving is clearing in_call (also while a revoker waits for
// it), which is what leave_call decides for a bound P after its tests. Frees of other Ps' objects
// (a thread freeing what another allocated) come here, so those tests were paid on each of them.
// One case is not bound at the end: a free waiting on a stale span while the world stops gives
// its P up and takes it back with a CAS (ensure_swept), so the P is then running, and leave_call
// must release it or bind it again (clearing in_call alone would leave it taken for good, and the
// next stop-the-world waiting for it).
[[gnu::noinline]] void free_holding_bound(HeapState& heap, ProcState& p, ThreadRecord* me,
                                          const Arena& arena, void* ptr) {
  bump(p.cache.held_frees, 1);
  SPANHEAP_DCHECK(&heap, !cache_is_stale(heap.sg(), p.cache),
                  "a bound P's cache is stale (INV-B1)");
  FreeResult r;
  const bool ok = free_with_proc(heap, p, arena, reinterpret_cast<std::uintptr_t>(ptr), r);
  if (SPANHEAP_UNLIKELY(p.status().load(std::memory_order_relaxed) == ProcStatus::running)) {
    leave_call(heap, p);
  } else {
    leave_bound(me);
  }
  if (SPANHEAP_UNLIKELY(!ok)) report_bad_free(heap, r, ptr);
}

}  // namespace

void* heap_allocate(HeapState& heap, int proc, std::size_t size, std::size_t align, bool retried) {
  unsigned c;
  if (SPANHEAP_LIKELY(align == 16 && size <= size_table::small_max)) {
    c = size_to_class16(size);  // the common call: one table load, nothing to validate
  } else {
    if (SPANHEAP_UNLIKELY(align == 0 || (align & (align - 1)) != 0 || align > max_alloc_size)) {
      report(&heap, ErrorKind::bad_alignment, nullptr,
             "alignment {} is not a power of two between 1 and {} (size={})", align, max_alloc_size,
             size);
      return nullptr;
    }
    if (SPANHEAP_UNLIKELY(size > max_alloc_size)) {
      report(&heap, ErrorKind::size_overflow, nullptr,
             "size {} exceeds the largest object spanheap allocates ({} bytes)", size,
             max_alloc_size);
      return nullptr;
    }
    c = size_to_class(size, align);
  }
  ProcState& p = acquire_for_call(heap, proc);
  bump(p.cache.general_allocs, 1);
  return allocate_holding(heap, p, proc, c, size, align, retried);
}

void heap_free(HeapState& heap, int proc, void* ptr) {
  if (ptr == nullptr) return;
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  Arena* arena = registry_lookup(addr);
  if (arena == nullptr) {
    report(&heap, ErrorKind::foreign_free, ptr,
           "pointer is not in memory of any spanheap heap (ptr={})", ptr);
    return;
  }
  if (arena->owner != &heap) {
    report(&heap, ErrorKind::misuse, ptr,
           "pointer belongs to another spanheap heap: free through the wrong heap (ptr={})", ptr);
    return;
  }
  free_holding(heap, acquire_for_call(heap, proc), proc, *arena, ptr);
}

// The fast paths of Heap::allocate and Heap::free: the calling thread's last P is idle, its cache
// flushed, and the object comes from (or goes back to) the span that P caches for its class. They
// do the general path's work for that case, in the same order, with no call but the CAS that takes
// the P; anything else continues in allocate_holding / free_holding with the P held, or in the
// general path when the P was not taken. The common case, a thread bound to its P with the default
// handshake, is tested with one compare (ProcAffinity::key) and its exit needs no test of how the P
// was entered; a thread bound with the fenced handshake or taking its P with a CAS goes through
// allocate_unbound / free_unbound, the same paths with enter_own's dispatch.
namespace {

// The allocation once P `p` is entered: `me` is the binder's record, or nullptr (unless `bound`)
// for a P taken with the CAS. `c` is size_to_class(size, align), not 0; `any_align` false says
// that `align` is 16.
template <bool bound, bool any_align>
[[gnu::always_inline]] inline void* allocate_in_cache(FastHeap<bound> heap, ProcState& p,
                                                      ThreadRecord* me, unsigned c,
                                                      std::size_t size, std::size_t align) {
  void* obj;
  std::size_t elem;
  // Bound: the cache is flushed (a bound P is never stale, INV-B1) and there are no hooks (the
  // heap's bound_key would match no thread).
  if (!bound && SPANHEAP_UNLIKELY(cache_is_stale(as_heap(heap).sg(), p.cache) ||
                                  as_heap(heap).allocation_hooks))
    return allocate_holding_default(heap, p, c, size, align);
  if (SPANHEAP_UNLIKELY(!cache_alloc_fast(p.cache, c, obj, elem)))
    return any_align ? allocate_next_word_aligned(heap, p, c, size, align, me)
                     : allocate_next_word(heap, p, size, me);
  (void)elem;  // counted with its word (Cache::allocs)
  if (!bound && SPANHEAP_UNLIKELY(me == nullptr)) return leave_then_return(heap, p, obj);
  leave_bound(me);
  // No look at pacer.requested: only an allocation's slow path sets it, and that allocation runs
  // the cycle as it leaves (allocate_holding), or another one that saw the flag first did.
  return obj;
}

// What the bound fast paths do not test when they enter (enter_bound's may_be_nested): that the
// thread is not inside a call already. Its key is the bound key only outside a CallbackScope, and
// nothing else calls the heap from inside a call (a signal handler that interrupts one is not
// supported, as by any malloc). Debug builds check it.
[[gnu::always_inline]] inline void check_not_nested([[maybe_unused]] ProcHeap heap,
                                                    [[maybe_unused]] ThreadRecord* me) {
#ifndef NDEBUG
  SPANHEAP_DCHECK(&as_heap(heap), me->in_call.load(std::memory_order_relaxed) == 0,
                  "a call from inside a call of the same thread reached the bound fast path "
                  "(CallbackScope)");
#endif
}

// The allocation of class `c` by a thread that is not bound with the default handshake.
template <bool any_align>
[[gnu::always_inline]] inline void* allocate_unbound_in(HeapState& heap, unsigned c,
                                                        std::size_t size, std::size_t align) {
  if (SPANHEAP_UNLIKELY(last_used_proc.uid() != heap.uid))
    return heap_allocate(heap, -1, size, align);
  ProcState& p = *last_used_proc.state;
  ThreadRecord* me;
  if (SPANHEAP_UNLIKELY(!enter_own(heap, p, me))) return heap_allocate(heap, -1, size, align);
  return allocate_in_cache<false, any_align>(heap, p, me, c, size, align);
}

// The fast paths' slow exits take the Heap's pointer to its state and load it themselves: loaded
// for them, it was loaded on every call (hoisted above the branches).
using StatePtr = std::unique_ptr<HeapState>;

[[gnu::noinline]] void* allocate_unbound(const StatePtr& state, std::size_t size) {
  return allocate_unbound_in<false>(*state, size_to_class16(size), size, 16);
}

// The bound thread's allocation of class `c`, with its P still to enter. The heap is its P's
// (ProcState::heap), read on the slow exits only: the fast path holds no register for it.
template <bool any_align>
[[gnu::always_inline]] inline void* allocate_bound(unsigned c, std::size_t size,
                                                   std::size_t align) {
  ProcState& p = *last_used_proc.state;
  ThreadRecord* const me = last_used_proc.record;
  check_not_nested(ProcHeap{p}, me);
  if (SPANHEAP_UNLIKELY(!enter_bound(ProcBinding::automatic, p, me, /*may_be_nested=*/false)))
    return heap_allocate(ProcHeap{p}, -1, size, align);
  return allocate_in_cache<true, any_align>(ProcHeap{p}, p, me, c, size, align);
}

// The fast path of what its one-load lookup leaves out but a size class serves: sizes above
// small_max (Go's size_to_class128 steps), alignments below 16 (malloc asks 8 of a request of at
// most 8 bytes) and above it up to the page (a class whose size is a multiple of the alignment).
// Large sizes and bad alignments go on to heap_allocate, which reports the bad ones.
[[gnu::noinline]] void* allocate_other_size(const StatePtr& state, std::size_t size,
                                            std::size_t align) {
  HeapState& heap = *state;
  const unsigned c = align != 0 && (align & (align - 1)) == 0 ? size_to_class(size, align) : 0;
  if (SPANHEAP_UNLIKELY(c == 0)) return heap_allocate(heap, -1, size, align);
  if (SPANHEAP_UNLIKELY(last_used_proc.key != heap.bound_key))
    return allocate_unbound_in<true>(heap, c, size, align);
  return allocate_bound<true>(c, size, align);
}

// The general free from a fast path that entered `p`: through the binding, or with the CAS.
template <bool bound>
[[gnu::always_inline]] inline void free_general(HeapState& heap, ProcState& p, ThreadRecord* me,
                                                const Arena& arena, void* ptr) {
  if (bound) return free_holding_bound(heap, p, me, arena, ptr);
  free_holding(heap, p, -1, arena, ptr);
}

// The free fast path's exit when the span at `page` is not this P's bare own: a span some P
// caches takes free_into_cached_span, anything else (or what it declines) the general path. Out of
// line and six arguments (the span is read again from the page table), so that the fast path
// reaches it by a tail call and keeps no frame of its own: a call there cost every free the saving
// and restoring of three registers.
template <bool bound>
[[gnu::noinline]] void free_not_owner(HeapState& heap, ProcState& p, ThreadRecord* me,
                                      const Arena* arena, std::size_t page, void* ptr) {
  // Read again: it may be nullptr by now (its span freed to the page heap meanwhile).
  Span* s = arena->spans[page].load(std::memory_order_acquire);
  if (s != nullptr &&
      free_into_cached_span(heap, p, *arena, page, *s, reinterpret_cast<std::uintptr_t>(ptr))) {
    if (!bound && SPANHEAP_UNLIKELY(me == nullptr)) return leave_call(heap, p);
    return leave_bound(me);
  }
  free_general<bound>(heap, p, me, *arena, ptr);
}

// The free once P `p` is entered (as allocate_in_cache): `ptr` is in `arena`, at `page` of its
// page table (below table_pages).
// `spans` is the arena's page table (the home arena's copy of it, HomeArena::spans, or
// arena->spans): read from the Heap object, it is not a load that waits for the arena's.
template <bool bound>
[[gnu::always_inline]] inline void free_in_cache(FastHeap<bound> heap, ProcState& p,
                                                 ThreadRecord* me, const Arena* arena,
                                                 std::atomic<Span*>* spans, std::size_t page,
                                                 void* ptr) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  // free_with_proc's owner path, for a valid free: the span is this P's cached span (sg+3, so
  // no lazy flush is due and only this P collects it), the pointer an allocated object's start.
  {
    Span* s = spans[page].load(std::memory_order_acquire);
    // At sg+3 and naming this P: in this P's cache since its flush of this cycle (a stale P's
    // spans are at sg+1), hence in use (a span no cache holds names no P: INV-S3), and only this
    // P, which we hold, could take it out. Bound, naming this P is enough: a bound P is never
    // stale (INV-B1), and a flushed P's spans are all at sg+3 (INV-S3). The owner word equals the
    // index only with no remote frees pending: a span other Ps have freed into takes the general
    // owner path, which tests their bits too.
    if (SPANHEAP_LIKELY(
            s != nullptr && s->owner_word.load(std::memory_order_relaxed) == p.index &&
            (bound || s->sweepgen.load(std::memory_order_acquire) == as_heap(heap).sg() + 3))) {
      // A cached span is small, and `addr` is in its pages (the page table names it there).
      // object_slot's fields are the class's (verify() checks them; span_test, at every byte).
      const std::uint32_t i = object_slot(*s, addr);  // no object starts at addr: i >= nelems
      // A slot already pending (a double free) goes to free_holding, which reports it.
      check_owner_free_word(heap, *s, i);
      if (SPANHEAP_LIKELY(i < s->nelems && owner_free_slot(*s, i))) {
        // elem_size read again, not kept from the slot test: a register fewer across the bits.
        const std::size_t elem = s->elem_size;
        bump(p.cache.frees, 1);
        bump(p.cache.free_bytes, elem);
        poison_memory(heap, ptr, elem);
        if (!bound && SPANHEAP_UNLIKELY(me == nullptr)) return leave_call(heap, p);
        leave_bound(me);
        return;
      }
      // The span's own arena, which is `arena` (this P caches the span, so its struct is not
      // recycled): `arena` is then dead past the page table, one register fewer on the way.
      return free_general<bound>(heap, p, me, *s->arena, ptr);
    }
    // Perhaps a span some P caches: ours with other Ps' frees pending, or another P's.
    if (s != nullptr) return free_not_owner<bound>(heap, p, me, arena, page, ptr);
  }
  free_general<bound>(heap, p, me, *arena, ptr);
}

[[gnu::noinline]] void free_unbound(const StatePtr& state, const Arena* arena,
                                    std::atomic<Span*>* spans, std::size_t page, void* ptr) {
  HeapState& heap = *state;
  if (SPANHEAP_UNLIKELY(last_used_proc.uid() != heap.uid)) return heap_free(heap, -1, ptr);
  ProcState& p = *last_used_proc.state;
  ThreadRecord* me;
  if (SPANHEAP_UNLIKELY(!enter_own(heap, p, me))) return heap_free(heap, -1, ptr);
  free_in_cache<false>(heap, p, me, arena, spans, page, ptr);
}

// A free of `ptr`, at `page` of `arena`'s page table `spans`, with the P still to enter. The
// bound path reaches the heap through its P, on its slow exits (allocate_bound).
[[gnu::always_inline]] inline void free_in_arena(const StatePtr& state, std::uint64_t bound_key,
                                                 const Arena* arena, std::atomic<Span*>* spans,
                                                 std::size_t page, void* ptr) {
  if (SPANHEAP_UNLIKELY(last_used_proc.key != bound_key))
    return free_unbound(state, arena, spans, page, ptr);
  ProcState& p = *last_used_proc.state;
  ThreadRecord* const me = last_used_proc.record;
  check_not_nested(ProcHeap{p}, me);
  if (SPANHEAP_UNLIKELY(!enter_bound(ProcBinding::automatic, p, me, /*may_be_nested=*/false)))
    return heap_free(ProcHeap{p}, -1, ptr);
  free_in_cache<true>(ProcHeap{p}, p, me, arena, spans, page, ptr);
}

// A pointer outside the home arena's page table: another arena of this heap, or anything the
// general path reports (nullptr, another heap's, foreign, never-used pages of an arena).
[[gnu::noinline]] void free_elsewhere(const StatePtr& state, void* ptr) {
  HeapState& heap = *state;
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const Arena* arena = registry_lookup(addr);  // nullptr for nullptr
  if (SPANHEAP_UNLIKELY(arena == nullptr || arena->owner != &heap)) return heap_free(heap, -1, ptr);
  const std::size_t page = (addr - arena->base) >> page_shift;
  if (SPANHEAP_UNLIKELY(page >= arena->table_pages.load(std::memory_order_acquire)))
    return heap_free(heap, -1, ptr);
  free_in_arena(state, heap.bound_key, arena, arena->spans, page, ptr);
}

}  // namespace

// `state` is the Heap's pointer to its state, `bound_key` the Heap's copy of its bound key
// (Heap::bound_key_): the bound fast paths read neither the pointer nor the state (free_in_arena).
[[gnu::always_inline]] inline void* allocate_fast(const StatePtr& state, std::uint64_t bound_key,
                                                  std::size_t size, std::size_t align) {
  if (SPANHEAP_UNLIKELY(align != 16 || size > size_table::small_max))
    return allocate_other_size(state, size, align);
  if (SPANHEAP_UNLIKELY(last_used_proc.key != bound_key)) return allocate_unbound(state, size);
  return allocate_bound<false>(size_to_class16(size), size, 16);
}

// `home_arena` is the Heap's (home_arena.hpp): the page's span is two loads from the Heap; the
// arena (for the bound) and the state (for the P) are read beside them, not before.
[[gnu::always_inline]] inline void free_fast(const StatePtr& state, std::uint64_t bound_key,
                                             const HomeArena& home_arena, void* ptr) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const HomeArenaView home = home_arena_view(home_arena);
  check_home_arena_view(*state, home);
  // One test for "in the home arena" and "its page table has the entry": the table never covers
  // more than the arena (commit_tables), and a pointer below the base wraps to a page past it.
  const std::size_t page = (addr - home.base) >> page_shift;
  if (SPANHEAP_UNLIKELY(at_or_past(page, home.arena->table_pages)))
    return free_elsewhere(state, ptr);
  free_in_arena(state, bound_key, home.arena, home.spans, page, ptr);
}

}  // namespace spanheap::detail

// The two calls every program makes most are defined here rather than with the rest of the facade,
// so that the fast paths inline into them rather than cost a call from another translation unit.
namespace spanheap {

void* Heap::allocate(std::size_t size) {
  return detail::allocate_fast(state_, bound_key_, size, 16);
}
void* Heap::allocate(std::size_t size, std::size_t align) {
  return detail::allocate_fast(state_, bound_key_, size, align);
}

void Heap::free(void* p) { detail::free_fast(state_, bound_key_, home_, p); }

// calloc's call, through the same fast paths.
void* Heap::allocate_zeroed(std::size_t size, std::size_t align) {
  void* obj = detail::allocate_fast(state_, bound_key_, size, align);
  if (obj != nullptr) detail::clear_if_dirty(*state_, obj, size);
  return obj;
}

}  // namespace spanheap
