// RecyclingOsMemory (recycling_os.hpp): reuse of arenas' address space between fuzz executions.
#include "recycling_os.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPANHEAP_FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SPANHEAP_FUZZ_ASAN 1
#endif
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
  Region r{nullptr, size, align};
  if (best != pool_.size()) {
    r = pool_[best];
    pool_bytes_ -= r.size;
    pool_[best] = pool_.back();
    pool_.pop_back();
  } else {
    r.p = system_memory().reserve(size, align);
    if (r.p == nullptr) return nullptr;
  }
  outstanding_.push_back(r);
  return r.p;
}

bool RecyclingOsMemory::commit(void* p, std::size_t size) {
  return system_memory().commit(p, size);
}

void RecyclingOsMemory::release(void* p, std::size_t size) { system_memory().release(p, size); }

void RecyclingOsMemory::unreserve(void* p, std::size_t size) {
  std::lock_guard lock(mu_);
  Region r{p, size, 0};  // the whole region as reserved (it may be longer than `size`)
  bool known = false;
  for (std::size_t i = 0; i < outstanding_.size(); ++i) {
    if (outstanding_[i].p == p) {
      r = outstanding_[i];
      known = true;
      outstanding_[i] = outstanding_.back();
      outstanding_.pop_back();
      break;
    }
  }
  if (!known || pool_bytes_ + r.size > max_pool_bytes || !scrub(r.p, r.size)) {
    system_memory().unreserve(r.p, r.size);
    return;
  }
  pool_.push_back(r);
  pool_bytes_ += r.size;
}

// Zeroes every resident page of [p, p + size) and makes the range inaccessible. Pages that are
// not resident read zero already (never touched, or released with MADV_DONTNEED). A resident
// page may sit in a part the last heap did not commit (it was touched by an earlier one), so the
// range is made writable first.
bool RecyclingOsMemory::scrub(void* p, std::size_t size) {
  static const std::size_t os_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t pages = (size + os_page - 1) / os_page;
  resident_.resize(pages);
  if (mincore(p, size, resident_.data()) != 0) return false;
  if (mprotect(p, size, PROT_READ | PROT_WRITE) != 0) return false;
#ifdef SPANHEAP_FUZZ_ASAN
  __asan_unpoison_memory_region(p, size);  // the heap unpoisons its arenas at teardown; be sure
#endif
  auto* base = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < pages; ++i) {
    if ((resident_[i] & 1) != 0) std::memset(base + i * os_page, 0, os_page);
  }
  return mprotect(p, size, PROT_NONE) == 0;
}

}  // namespace spanheap::fuzz
