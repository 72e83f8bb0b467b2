// RecyclingOsMemory (recycling_os.hpp): reuse of arenas' address space between fuzz executions.
#include "recycling_os.hpp"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>

#include "sanitizers.hpp"
#ifdef SPANHEAP_FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace spanheap::fuzz {

namespace {

const std::size_t os_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

// Zeroes memory the way the kernel does for a released page: below the sanitizers. The heap
// poisons its free runs for ASan, and released or unreserved memory is free, so ASan's memset
// would report the write; libc's memset (the next definition after ASan's interceptor) does not.
void zero_as_os(void* p, std::size_t n) {
#ifdef SPANHEAP_FUZZ_ASAN
  using MemsetFn = void* (*)(void*, int, std::size_t);
  static const auto libc_memset = reinterpret_cast<MemsetFn>(dlsym(RTLD_NEXT, "memset"));
  if (libc_memset != nullptr) {
    libc_memset(p, 0, n);
    return;
  }
  __asan_unpoison_memory_region(p, n);  // no libc memset found: unpoison so the write is legal
#endif
  std::memset(p, 0, n);
}

#ifdef SPANHEAP_FUZZ_ASAN
// Whether the first byte of every OS page of [p, p + n) is poisoned, read from ASan's shadow
// directly (one load per page; __asan_address_is_poisoned is a call per page). The heap poisons
// and unpoisons whole pages of free memory, so a page it left accessible shows at its first
// byte. Never instrumented: an instrumented load of the shadow would fault.
__attribute__((no_sanitize("address"))) bool poisoned_pages(const void* p, std::size_t n) {
  static const auto mapping = [] {
    std::size_t scale = 0, offset = 0;
    __asan_get_shadow_mapping(&scale, &offset);
    return std::pair{scale, offset};
  }();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (std::uintptr_t q = a; q < a + n; q += os_page) {
    if (*reinterpret_cast<const unsigned char*>((q >> mapping.first) + mapping.second) == 0)
      return false;
  }
  return true;
}
#endif

}  // namespace

// Zeroes the resident OS pages of [p, p + n) (mincore says which); the others read zero anyway.
bool RecyclingOsMemory::zero_resident(void* p, std::size_t n) {
  auto* base = static_cast<unsigned char*>(p);
  const std::size_t pages = (n + os_page - 1) / os_page;
  resident_.resize(pages);
  if (mincore(base, n, resident_.data()) != 0) return false;
  for (std::size_t i = 0; i < pages;) {
    if ((resident_[i] & 1) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    while (j < pages && (resident_[j] & 1) != 0) ++j;
    zero_as_os(base + i * os_page, std::min(j * os_page, n) - i * os_page);
    i = j;
  }
  return true;
}

bool RecyclingOsMemory::keeps_poison() const noexcept {
#ifdef SPANHEAP_FUZZ_ASAN
  return true;
#else
  return false;
#endif
}

RecyclingOsMemory& RecyclingOsMemory::instance() {
  static RecyclingOsMemory memory;
  return memory;
}

// Best fit among the kept regions: the smallest one at least `size` long whose base has the
// alignment (page_heap asks for arenas of many sizes). The tail past `size` stays inaccessible.
// The pool is keyed by size, so this is a tree search and a short walk past misaligned ones.
void* RecyclingOsMemory::reserve(std::size_t size, std::size_t align) {
  std::lock_guard lock(mu_);
  // Among regions of the best size, the one kept last (a multimap keeps equal keys in insertion
  // order): its memory is the likeliest to be in cache.
  auto best = pool_.end();
  for (auto group = pool_.lower_bound(size); group != pool_.end() && best == pool_.end();) {
    const auto group_end = pool_.upper_bound(group->first);
    for (auto it = group_end; it != group && best == pool_.end();) {
      --it;
      if (reinterpret_cast<std::uintptr_t>(it->second.p) % (align == 0 ? 1 : align) == 0) best = it;
    }
    group = group_end;
  }
  Region r;
  if (best != pool_.end()) {
    auto node = pool_.extract(best);
    r = std::move(node.mapped());
    pool_bytes_ -= r.size;
    spare_nodes_.push_back(std::move(node));
  } else {
    r.p = system_memory().reserve(size, align);
    if (r.p == nullptr) return nullptr;
    r.size = size;
  }
  r.committed.clear();
  void* p = r.p;
  outstanding_.push_back(std::move(r));
  return p;
}

RecyclingOsMemory::Region* RecyclingOsMemory::outstanding_region(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (Region& r : outstanding_) {
    const auto base = reinterpret_cast<std::uintptr_t>(r.p);
    if (a >= base && a - base < r.size) return &r;
  }
  return nullptr;
}

namespace {

// Adds [add.first, add.second) to a sorted list of disjoint ranges, merging it with every range
// it overlaps or touches.
void insert_range(std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& c,
                  std::pair<std::uintptr_t, std::uintptr_t> add) {
  auto it = std::lower_bound(c.begin(), c.end(), add);
  if (it != c.begin() && std::prev(it)->second >= add.first) --it;
  auto last = it;
  while (last != c.end() && last->first <= add.second) {
    add.first = std::min(add.first, last->first);
    add.second = std::max(add.second, last->second);
    ++last;
  }
  it = c.erase(it, last);
  c.insert(it, add);
}

// Removes [cut.first, cut.second) from a sorted list of disjoint ranges, in place (at most one
// range splits in two).
void erase_range(std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& c,
                 std::pair<std::uintptr_t, std::uintptr_t> cut) {
  // The first range that ends past the cut's start (the ranges' ends ascend).
  auto it = std::partition_point(c.begin(), c.end(),
                                 [&](const auto& r) { return r.second <= cut.first; });
  if (it == c.end() || it->first >= cut.second) return;
  if (it->first < cut.first) {
    if (it->second > cut.second) {  // the cut is inside this range: split it
      const std::pair<std::uintptr_t, std::uintptr_t> tail{cut.second, it->second};
      it->second = cut.first;
      c.insert(std::next(it), tail);
      return;
    }
    it->second = cut.first;
    ++it;
  }
  auto last = it;
  while (last != c.end() && last->second <= cut.second) ++last;
  if (last != c.end() && last->first < cut.second) last->first = cut.second;
  c.erase(it, last);
}

[[maybe_unused]] bool covers(const std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& c,
                             std::pair<std::uintptr_t, std::uintptr_t> r) {
  auto it = std::upper_bound(c.begin(), c.end(), std::pair{r.first, ~std::uintptr_t{0}});
  return it != c.begin() && std::prev(it)->first <= r.first && r.second <= std::prev(it)->second;
}

}  // namespace

bool RecyclingOsMemory::commit(void* p, std::size_t size) {
  const Range add{reinterpret_cast<std::uintptr_t>(p), reinterpret_cast<std::uintptr_t>(p) + size};
  std::lock_guard lock(mu_);
  Region* r = outstanding_region(p);
#ifdef SPANHEAP_FUZZ_ASAN
  if (r != nullptr && covers(r->writable, add)) {
    // Mapped read-write by an earlier life of the region and poisoned since, as keeps_poison()
    // hands it over: this heap's commit is bookkeeping alone.
    insert_range(r->committed, add);
    return true;
  }
#endif
  if (!system_memory().commit(p, size)) return false;
#ifdef SPANHEAP_FUZZ_ASAN
  __asan_poison_memory_region(p, size);  // fresh memory has a clear shadow (keeps_poison)
#endif
  if (r != nullptr) insert_range(r->committed, add);
  return true;
}

// Zeroes the resident pages in place instead of MADV_DONTNEED: the heap sees the same thing (the
// range stays committed and reads zero), but the pages stay resident, so the next touch in this
// execution or a later one does not fault in a fresh page (those faults and the madvise were a
// seventh of an alloc_free execution; the zeroing costs about half of that).
void RecyclingOsMemory::release(void* p, std::size_t size) {
  std::lock_guard lock(mu_);
  Region* r = outstanding_region(p);
  if (r != nullptr && declared_) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    zero_written(*r, Range{a, a + size});
  } else if (r == nullptr || !zero_resident(p, size)) {
    system_memory().release(p, size);
  }
}

// Zeroes the declared writes inside `within` and forgets them.
void RecyclingOsMemory::zero_written(Region& r, Range within) {
  bool any = false;
  for (const Range& w : r.written) {
    const Range both{std::max(w.first, within.first), std::min(w.second, within.second)};
    if (both.first >= both.second) continue;
    zero_as_os(reinterpret_cast<void*>(both.first), both.second - both.first);
    any = true;
  }
  if (any) erase_range(r.written, within);
}

void RecyclingOsMemory::declare_writes(bool on) {
  std::lock_guard lock(mu_);
  declared_ = on;
}

void RecyclingOsMemory::note_written(const void* p, std::size_t n) {
  if (n == 0) return;
  std::lock_guard lock(mu_);
  Region* r = outstanding_region(p);
  if (r == nullptr) return;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  insert_range(r->written,
               Range{a & ~(write_granule - 1), (a + n + write_granule - 1) & ~(write_granule - 1)});
}

void RecyclingOsMemory::unreserve(void* p, std::size_t size) {
  std::lock_guard lock(mu_);
  Region r;
  bool known = false;
  for (std::size_t i = 0; i < outstanding_.size(); ++i) {
    if (outstanding_[i].p == p) {
      r = std::move(outstanding_[i]);
      known = true;
      outstanding_[i] = std::move(outstanding_.back());
      outstanding_.pop_back();
      break;
    }
  }
  if (!known) {
#ifdef SPANHEAP_FUZZ_ASAN
    __asan_unpoison_memory_region(p, size);  // handed back poisoned (keeps_poison), see below
#endif
    system_memory().unreserve(p, size);
    return;
  }
  if (pool_bytes_ + r.size > max_pool_bytes || !scrub(r)) {
#ifdef SPANHEAP_FUZZ_ASAN
    // Whatever maps these addresses next must not inherit this region's poison: the ranges
    // committed now (the heap hands them back poisoned) and those of earlier lives.
    for (const std::vector<Range>* list : {&r.committed, &r.writable}) {
      for (const Range& w : *list)
        __asan_unpoison_memory_region(reinterpret_cast<void*>(w.first), w.second - w.first);
    }
#endif
    system_memory().unreserve(r.p, r.size);
    return;
  }
  pool_bytes_ += r.size;
  const std::size_t key = r.size;
  if (spare_nodes_.empty()) {
    pool_.emplace(key, std::move(r));
    return;
  }
  auto node = std::move(spare_nodes_.back());
  spare_nodes_.pop_back();
  node.key() = key;
  node.mapped() = std::move(r);
  pool_.insert(std::move(node));
}

// Zeroes the resident pages of the committed ranges and makes the ranges inaccessible again.
// Pages outside them stayed inaccessible for this heap's whole life, so they still read zero.
// Under ASan the committed ranges stay mapped read-write and poisoned instead of
// mprotect(PROT_NONE): the heap hands them back poisoned (keeps_poison), so every access the
// heap's instrumented code makes to them before it commits them again is still reported, and
// neither this nor the next commit() is a system call (the mprotects and the page-table and
// mapping changes they bring were a tenth of an execution). A range with an accessible page is
// not kept, since the next heap would inherit free memory that ASan does not guard (see
// poisoned_pages). Without ASan they are made PROT_NONE, as a fresh reservation is.
bool RecyclingOsMemory::scrub(Region& r) {
  if (declared_) {  // before any range goes PROT_NONE
    for (const Range& w : r.written)
      zero_as_os(reinterpret_cast<void*>(w.first), w.second - w.first);
  }
  r.written.clear();
  for (const Range& c : r.committed) {
    auto* base = reinterpret_cast<unsigned char*>(c.first);
    const std::size_t bytes = c.second - c.first;
#ifdef SPANHEAP_FUZZ_ASAN
    if (!poisoned_pages(base, bytes)) return false;
    if (!declared_ && !zero_resident(base, bytes)) return false;
    insert_range(r.writable, c);
#else
    if ((!declared_ && !zero_resident(base, bytes)) || mprotect(base, bytes, PROT_NONE) != 0) {
      return false;
    }
#endif
  }
  r.committed.clear();
  return true;
}

}  // namespace spanheap::fuzz
