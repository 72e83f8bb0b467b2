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

void* RecyclingOsMemory::reserve(std::size_t size, std::size_t align) {
  std::lock_guard lock(mu_);
  void* p = nullptr;
  for (std::size_t i = 0; i < pool_.size(); ++i) {
    if (pool_[i].size == size && pool_[i].align == align) {
      p = pool_[i].p;
      pool_bytes_ -= size;
      pool_[i] = pool_.back();
      pool_.pop_back();
      break;
    }
  }
  if (p == nullptr) p = system_memory().reserve(size, align);
  if (p != nullptr) outstanding_.push_back(Region{p, size, align});
  return p;
}

bool RecyclingOsMemory::commit(void* p, std::size_t size) {
  return system_memory().commit(p, size);
}

void RecyclingOsMemory::release(void* p, std::size_t size) { system_memory().release(p, size); }

void RecyclingOsMemory::unreserve(void* p, std::size_t size) {
  std::lock_guard lock(mu_);
  std::size_t align = 0;
  for (std::size_t i = 0; i < outstanding_.size(); ++i) {
    if (outstanding_[i].p == p && outstanding_[i].size == size) {
      align = outstanding_[i].align;
      outstanding_[i] = outstanding_.back();
      outstanding_.pop_back();
      break;
    }
  }
  if (align == 0 || pool_bytes_ + size > max_pool_bytes || !scrub(p, size)) {
    system_memory().unreserve(p, size);
    return;
  }
  pool_.push_back(Region{p, size, align});
  pool_bytes_ += size;
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
