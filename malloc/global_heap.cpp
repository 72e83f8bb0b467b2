// global_heap: see global_heap.hpp.
#include "global_heap.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace spanheap::shim {

std::atomic<InitState> init_state{InitState::uninitialised};
Heap* the_heap = nullptr;
std::atomic<Heap*> ready_heap{nullptr};

// The heap's own start-up needs a few KiB (its state, P array, sweeper thread); 1 MiB of .bss costs
// nothing until touched and leaves room for a libc that allocates more at its first thread.
alignas(64) unsigned char bootstrap[bootstrap_bytes];

std::uintptr_t next_heap_begin = 0;  // immutable after the build
std::uintptr_t next_heap_end = 0;

namespace {

// True on the thread that is building the heap, while it does.
thread_local bool building_here = false;

// Never destroyed: programs free memory from static destructors and atexit handlers, after any
// destructor of ours would have run.
alignas(Heap) unsigned char heap_storage[sizeof(Heap)];

// ---- bootstrap arena ------------------------------------------------------------------------

constexpr std::size_t bootstrap_header = 16;
std::atomic<std::size_t> bootstrap_used{0};

// ---- errors ---------------------------------------------------------------------------------

enum class OnError : std::uint8_t { abort, report };
OnError on_error = OnError::abort;  // immutable after the build

void write_all(int fd, const char* s, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Prints one line (and appends it to $SPANHEAP_ERROR_LOG, which ci/selfhost reads: programs under
// test may swallow their children's stderr). Allocation failures are not reported: malloc answers
// them with NULL and ENOMEM, as glibc does, and programs probe for them on purpose.
void shim_error_handler(const ErrorReport& r) {
  if (r.kind == ErrorKind::out_of_memory || r.kind == ErrorKind::size_overflow ||
      r.kind == ErrorKind::bad_alignment)
    return;
  char line[1100];
  std::size_t n = r.message.size() < sizeof line - 1 ? r.message.size() : sizeof line - 1;
  std::memcpy(line, r.message.data(), n);
  line[n++] = '\n';
  write_all(STDERR_FILENO, line, n);
  if (const char* path = std::getenv("SPANHEAP_ERROR_LOG"); path != nullptr && *path != '\0') {
    const int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      write_all(fd, line, n);
      ::close(fd);
    }
  }
  if (on_error == OnError::abort) std::abort();
}

OnError on_error_from_env() {
  const char* v = std::getenv("SPANHEAP_ON_ERROR");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "abort") == 0) return OnError::abort;
  if (std::strcmp(v, "report") == 0) return OnError::report;
  static const char msg[] = "spanheap: ignoring SPANHEAP_ON_ERROR: not abort or report\n";
  write_all(STDERR_FILENO, msg, sizeof msg - 1);
  return OnError::abort;
}

// ---- the next allocator's brk heap ----------------------------------------------------------

std::uintptr_t parse_hex(const char*& s) {
  std::uintptr_t v = 0;
  for (;; s++) {
    const char c = *s;
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return v;
    v = v * 16 + static_cast<std::uintptr_t>(d);
  }
}

// Finds the "[heap]" line of /proc/self/maps (the brk heap) without allocating.
void find_brk_heap() {
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  std::size_t have = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf + have, sizeof buf - 1 - have);
    if (r <= 0) break;
    have += static_cast<std::size_t>(r);
    buf[have] = '\0';
    char* line = buf;
    for (char* nl; (nl = std::strchr(line, '\n')) != nullptr; line = nl + 1) {
      *nl = '\0';
      if (std::strstr(line, "[heap]") != nullptr) {
        const char* s = line;
        next_heap_begin = parse_hex(s);
        s++;
        next_heap_end = parse_hex(s);
        ::close(fd);
        return;
      }
    }
    have = static_cast<std::size_t>(buf + have - line);
    std::memmove(buf, line, have);
    if (have == sizeof buf - 1) have = 0;  // a line longer than the buffer: not [heap]
  }
  ::close(fd);
}

template <typename F>
F next_symbol(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    // Loaded by dlopen after libc: there is no "next" definition, so ask libc itself.
    if (void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD)) f = dlsym(libc, name);
  }
  return reinterpret_cast<F>(f);
}

// ---- the build --------------------------------------------------------------------------------

// fork() while another thread builds the heap would leave the child waiting for a build that
// never finishes: wait for it in the parent first. (The heap's own locks are the library's.)
void before_fork() {
  while (init_state.load(std::memory_order_acquire) == InitState::initialising && !building_here)
    sched_yield();
}

void build() {
  pthread_atfork(before_fork, nullptr, nullptr);
  on_error = on_error_from_env();
  find_brk_heap();
  Options o = Options::from_env();
  o.error_handler = shim_error_handler;
  the_heap = new (heap_storage) Heap(o);
}

// Built before main while the process has one thread (LD_PRELOAD runs this before the program's
// own constructors), so fork and the build cannot meet in practice; global_heap() still builds on
// demand for anything that allocates earlier.
[[gnu::constructor]] void build_at_load() { (void)global_heap(); }

}  // namespace

Heap* global_heap_slow() {
  if (building_here) return nullptr;
  InitState expected = InitState::uninitialised;
  if (init_state.compare_exchange_strong(expected, InitState::initialising,
                                         std::memory_order_acq_rel)) {
    building_here = true;
    build();
    building_here = false;
    init_state.store(InitState::ready, std::memory_order_release);
    ready_heap.store(the_heap, std::memory_order_release);
    return the_heap;
  }
  while (init_state.load(std::memory_order_acquire) != InitState::ready) sched_yield();
  return the_heap;
}

void* bootstrap_alloc(std::size_t size, std::size_t align) noexcept {
  if (align < bootstrap_header) align = bootstrap_header;
  std::size_t used = bootstrap_used.load(std::memory_order_relaxed);
  for (;;) {
    const std::size_t start = (used + bootstrap_header + align - 1) & ~(align - 1);
    if (size > bootstrap_bytes || start + size > bootstrap_bytes) {
      static const char msg[] = "spanheap: out_of_memory: bootstrap arena exhausted\n";
      write_all(STDERR_FILENO, msg, sizeof msg - 1);
      return nullptr;
    }
    if (bootstrap_used.compare_exchange_weak(used, start + size, std::memory_order_relaxed)) {
      std::memcpy(bootstrap + start - sizeof size, &size, sizeof size);
      return bootstrap + start;
    }
  }
}

std::size_t bootstrap_size(const void* p) noexcept {
  std::size_t size;
  std::memcpy(&size, static_cast<const unsigned char*>(p) - sizeof size, sizeof size);
  return size;
}

void next_free(void* p) noexcept {
  using Free = void (*)(void*);
  static const Free f = next_symbol<Free>("free");
  if (f != nullptr) f(p);
}

std::size_t next_usable_size(void* p) noexcept {
  using UsableSize = std::size_t (*)(void*);
  static const UsableSize f = next_symbol<UsableSize>("malloc_usable_size");
  return f != nullptr ? f(p) : 0;
}

}  // namespace spanheap::shim
