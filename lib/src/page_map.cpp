// page_map: see page_map.hpp.
#include "page_map.hpp"

#include <sys/mman.h>

#include <cstring>

#include "heap_state.hpp"
#include "report.hpp"
#include "size_classes.hpp"
#include "span.hpp"

namespace spanheap::detail {

std::atomic<registry::L2*> registry::l1[registry::l1_entries];

namespace {

using registry::L2;
using registry::l2_bits;
using registry::l2_entries;
RankedMutex registry_mu{LockRank::registry};

L2* ensure_l2(std::size_t i1) REQUIRES(registry_mu) {
  L2* l2 = registry::l1[i1].load(std::memory_order_acquire);
  if (l2 == nullptr) {
    // Interior nodes come straight from the OS (zeroed) and are never freed.
    void* mem =
        mmap(nullptr, sizeof(L2), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      report(nullptr, ErrorKind::out_of_memory, nullptr, "cannot map the arena registry");
    }
    l2 = static_cast<L2*>(mem);
    registry::l1[i1].store(l2, std::memory_order_release);
  }
  return l2;
}

void registry_set(Arena* arena, Arena* value) {
  LockGuard g(registry_mu);
  const std::uintptr_t end = arena->base + (arena->npages << page_shift);
  // The registry covers 48-bit addresses (registry_lookup answers "foreign" above): an arena
  // beyond would index past l1. Not expected from mmap without a hint; refused loudly if it is.
  if (end > (std::uintptr_t{1} << 48) || end < arena->base) {
    report(nullptr, ErrorKind::corruption, reinterpret_cast<void*>(arena->base),
           "arena [{:#x}, {:#x}) lies beyond the 48-bit address space the registry covers",
           arena->base, end);
    return;
  }
  for (std::uintptr_t a = arena->base; a < end; a += granule_size) {
    const std::size_t g_index = a >> granule_shift;
    L2* l2 = ensure_l2(g_index >> l2_bits);
    l2->arenas[g_index & (l2_entries - 1)].store(value, std::memory_order_release);
  }
}

}  // namespace

void registry_insert(Arena* arena) { registry_set(arena, arena); }

void registry_remove(Arena* arena) { registry_set(arena, nullptr); }

void registry_lock_for_fork() { registry_mu.lock_for_fork(); }

void registry_unlock_after_fork() { registry_mu.unlock_after_fork(); }

Span* span_of(const HeapState& heap, std::uintptr_t addr, Arena** arena_out) noexcept {
  Arena* arena = registry_lookup(addr);
  if (arena == nullptr || arena->owner != &heap) return nullptr;
  if (arena_out != nullptr) *arena_out = arena;
  const std::size_t page = (addr - arena->base) >> page_shift;
  if (page >= arena->table_pages.load(std::memory_order_acquire)) return nullptr;
  return arena->spans[page].load(std::memory_order_acquire);
}

void page_map_set(Arena& arena, std::uintptr_t start, std::size_t npages, Span* span) noexcept {
  std::atomic<Span*>* e = arena.spans + ((start - arena.base) >> page_shift);
  std::atomic<Span*>* const end = e + npages;
  // Four entries an iteration: a large span maps up to 128 pages here, and with one store an
  // iteration the loop's own increment, compare and branch were three quarters of its instructions.
  for (; end - e >= 4; e += 4) {
    e[0].store(span, std::memory_order_release);
    e[1].store(span, std::memory_order_release);
    e[2].store(span, std::memory_order_release);
    e[3].store(span, std::memory_order_release);
  }
  for (; e != end; ++e) e->store(span, std::memory_order_release);
}

namespace {

// The span part of find_object. Requires: the page heap lock, and `span` in use as loaded (acquire)
// under it. Every writer of the fields read here (page_free, coalescing, carving, span_init_*)
// either holds that lock or writes before the release that makes the span in use, so they are
// stable for as long as the lock is held; the bitmaps and free_index are atomics.
PointerInfo classify_in_span(const HeapState& heap, const Span& span,
                             std::uintptr_t addr) noexcept {
  PointerInfo info;
  info.span_class = span.cls();
  if (addr >= span.limit()) {
    info.kind = PointerKind::span_tail;
    return info;
  }
  const std::uint32_t i = slot_of(span, addr);
  const std::uintptr_t base = span.start + i * span.elem_size;
  info.base = reinterpret_cast<void*>(base);
  info.size = span.elem_size;
  if (!slot_allocated(span, i,
                      [&] { protocol_point(heap, ProtocolPoint::find_object_between_loads); })) {
    info.kind = PointerKind::free_slot;
    return info;
  }
  info.kind = addr == base ? PointerKind::object_start : PointerKind::interior;
  info.pending_free = slot_pending(span, i);
  return info;
}

}  // namespace

PointerInfo find_object(const HeapState& heap, const void* p) noexcept {
  PointerInfo info;
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  Arena* arena = registry_lookup(addr);
  if (arena == nullptr) {
    info.kind = PointerKind::foreign;
    return info;
  }
  if (arena->owner != &heap) {
    info.kind = PointerKind::other_heap;
    return info;
  }
  const std::size_t page = (addr - arena->base) >> page_shift;
  // The page heap lock keeps the span from being returned to the page heap (page_free marks it
  // free under this lock, then rewrites nelems, start and npages) while its fields are read: the
  // answer is the span's classification before or after the release, never a mix. A free or a
  // sweep does not need this (it holds a P and the span swept; docs/design.md "Bad input"); a
  // caller of the public find_object may hold nothing.
  LockGuard g(const_cast<HeapState&>(heap).pages.mu);
  const Span* span = page < arena->table_pages.load(std::memory_order_acquire)
                         ? arena->spans[page].load(std::memory_order_acquire)
                         : nullptr;
  if (span == nullptr || span->state.load(std::memory_order_acquire) != SpanState::in_use) {
    info.kind = PointerKind::free_pages;
    return info;
  }
  protocol_point(heap, ProtocolPoint::find_object_span_read);
  return classify_in_span(heap, *span, addr);
}

// Read after the call has left its P: `obj` is live, so its span stays in use, and need_zero only
// turns true meanwhile (a sweep or collection frees another object); a false read means that no
// object of the span had been freed when `obj` was handed out, so its memory was the OS's zeroes.
void clear_if_dirty(const HeapState& heap, void* obj, std::size_t size) noexcept {
  const Span* s = span_of(heap, reinterpret_cast<std::uintptr_t>(obj));
  if (s == nullptr || s->need_zero.load(std::memory_order_relaxed)) std::memset(obj, 0, size);
}

}  // namespace spanheap::detail
