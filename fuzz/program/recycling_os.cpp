// RecyclingOsMemory (recycling_os.hpp): reuse of arenas' address space between fuzz executions.
#include "recycling_os.hpp"

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

RecyclingOsMemory& RecyclingOsMemory::instance() {
  static RecyclingOsMemory memory;
  return memory;
}

// Best fit among the kept regions: the smallest one at least `size` long whose base has the
// alignment (page_heap asks for arenas of many sizes). The tail past `size` stays inaccessible.
void* RecyclingOsMemory::reserve(std::size_t size, std::size_t align) {
  std::lock_guard lock(mu_);
  std::size_t best = pool_.size();
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    const bool fits = pool_[i].size >= size &&
                      reinterpret_cast<std::uintptr_t>(pool_[i].p) % (align == 0 ? 1 : align) == 0;
    if (fits && (best == pool_.size() || pool_[i].size < pool_[best].size)) best = i;
  }
  Region r;
  if (best != pool_.size()) {
    r = std::move(pool_[best]);
    pool_bytes_ -= r.size;
    pool_[best] = std::move(pool_.back());
    pool_.pop_back();
  } else {
    r.p = system_memory().reserve(size, align);
    if (r.p == nullptr) return nullptr;
    r.size = size;
    r.align = align;
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

bool RecyclingOsMemory::commit(void* p, std::size_t size) {
  if (!system_memory().commit(p, size)) return false;
  std::lock_guard lock(mu_);
  if (Region* r = outstanding_region(p)) {
    // Insert [p, p + size) and merge it with every range it overlaps or touches.
    Range add{reinterpret_cast<std::uintptr_t>(p), reinterpret_cast<std::uintptr_t>(p) + size};
    std::vector<Range>& c = r->committed;
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
  return true;
}

void RecyclingOsMemory::release(void* p, std::size_t size) { system_memory().release(p, size); }

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
    system_memory().unreserve(p, size);
    return;
  }
  if (pool_bytes_ + r.size > max_pool_bytes || !scrub(r)) {
    system_memory().unreserve(r.p, r.size);
    return;
  }
  pool_bytes_ += r.size;
  pool_.push_back(std::move(r));
}

// Zeroes the resident pages of the committed ranges (mincore says which) and makes the ranges
// inaccessible again. Pages outside them stayed PROT_NONE for this heap's whole life, so they
// still read zero.
bool RecyclingOsMemory::scrub(Region& r) {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  for (const Range& c : r.committed) {
    auto* base = reinterpret_cast<unsigned char*>(c.first);
    const std::size_t bytes = c.second - c.first;
    const std::size_t pages = (bytes + page - 1) / page;
    resident_.resize(pages);
    if (mincore(base, bytes, resident_.data()) != 0) return false;
#ifdef SPANHEAP_FUZZ_ASAN
    // The heap unpoisons its arenas at teardown; memset below goes through ASan's checks.
    if (__asan_region_is_poisoned(base, bytes) != nullptr)
      __asan_unpoison_memory_region(base, bytes);
#endif
    for (std::size_t i = 0; i < pages;) {
      if ((resident_[i] & 1) == 0) {
        ++i;
        continue;
      }
      std::size_t j = i + 1;
      while (j < pages && (resident_[j] & 1) != 0) ++j;
      std::memset(base + i * page, 0, std::min(j * page, bytes) - i * page);
      i = j;
    }
    if (mprotect(base, bytes, PROT_NONE) != 0) return false;
  }
  r.committed.clear();
  return true;
}

}  // namespace spanheap::fuzz
