// The whole allocation surface of the malloc shim against its contract (docs/malloc.md): every C
// function and operator new/delete form, glibc's answers at the edges, alignments past the page,
// calloc on reused memory, realloc in place, and cross-thread frees. ctest runs it twice: with the
// shim preloaded (malloc.surface) and with the override objects linked in (malloc.surface_linked).
// Both runs set SPANHEAP_ON_ERROR=report; the last check proves spanheap is the malloc in use.
#include <spanheap/version.hpp>

#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                                   \
    }                                                                               \
  } while (0)

bool aligned_to(const void* p, std::size_t a) {
  return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

bool all_zero(const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; i++)
    if (b[i] != 0) return false;
  return true;
}

// Keeps the optimiser from folding allocation pairs away or reasoning about the values.
template <typename T>
T launder(T v) {
  static T volatile slot;
  slot = v;
  return slot;
}

void malloc_calloc_realloc() {
  void* a = std::malloc(0);
  void* b = std::malloc(0);
  CHECK(a != nullptr && b != nullptr && a != b);
  std::free(a);
  std::free(b);
  for (std::size_t size : {1, 8, 9, 100, 4000, 40000, 3 << 20}) {
    void* p = std::malloc(size);
    CHECK(p != nullptr && aligned_to(p, size <= 8 ? 8 : 16) && malloc_usable_size(p) >= size);
    std::memset(p, 0xEE, size);
    std::free(p);
  }
  // calloc on memory that held data: fill, free, force reuse.
  for (std::size_t size : {48, 4000, 100000}) {
    std::vector<void*> v;
    for (int i = 0; i < 200; i++) v.push_back(std::memset(std::malloc(size), 0xFF, size));
    for (void* p : v) std::free(p);
    for (int i = 0; i < 400; i++) {
      void* p = std::calloc(1, size);
      CHECK(p != nullptr && all_zero(p, size));
      std::memset(p, 0xAB, size);
      std::free(p);
    }
  }
  errno = 0;
  CHECK(std::calloc(launder(SIZE_MAX / 2), 4) == nullptr && errno == ENOMEM);
  errno = 0;
  CHECK(std::malloc(launder(SIZE_MAX)) == nullptr && errno == ENOMEM);
  // realloc: in place while the class fits, content kept when it moves.
  auto* p = static_cast<unsigned char*>(std::malloc(100));
  for (int i = 0; i < 100; i++) p[i] = static_cast<unsigned char>(i);
  const std::size_t usable = malloc_usable_size(p);
  const auto where = reinterpret_cast<std::uintptr_t>(p);
  auto* same = static_cast<unsigned char*>(std::realloc(p, usable));
  CHECK(reinterpret_cast<std::uintptr_t>(same) == where);
  auto* q = static_cast<unsigned char*>(std::realloc(same, 100000));
  CHECK(q != nullptr);
  for (int i = 0; i < 100; i++) CHECK(q[i] == i);
  unsigned char* kept = launder(q);  // a failed reallocarray leaves q valid
  errno = 0;
  CHECK(reallocarray(q, launder(SIZE_MAX / 2), 4) == nullptr && errno == ENOMEM);
  CHECK(std::realloc(kept, 0) == nullptr);  // glibc: frees it
  void* r = std::realloc(nullptr, 10);
  CHECK(r != nullptr);
  std::free(r);
}

void alignment() {
  for (std::size_t a = sizeof(void*); a <= (std::size_t{4} << 20); a *= 2) {
    void* p = nullptr;
    CHECK(posix_memalign(&p, a, 100) == 0 && aligned_to(p, a));
    std::memset(p, 1, 100);
    std::free(p);
    void* q = aligned_alloc(a, 3 * a);
    CHECK(q != nullptr && aligned_to(q, a) && malloc_usable_size(q) >= 3 * a);
    std::free(q);
  }
  void* p = nullptr;
  CHECK(posix_memalign(&p, 24, 8) == EINVAL);
  CHECK(posix_memalign(&p, 4, 8) == EINVAL);  // not a multiple of sizeof(void*)
  errno = 0;
  CHECK(aligned_alloc(launder(std::size_t{48}), 96) == nullptr && errno == EINVAL);
  void* m = memalign(launder(std::size_t{48}), 10);  // glibc rounds up to 64
  CHECK(m != nullptr && aligned_to(m, 64));
  std::free(m);
  void* big = memalign(std::size_t{2} << 20, 5);
  CHECK(big != nullptr && aligned_to(big, std::size_t{2} << 20));
  std::free(big);
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* v = valloc(10);
  CHECK(v != nullptr && aligned_to(v, page));
  std::free(v);
  void* pv = pvalloc(1);
  CHECK(pv != nullptr && aligned_to(pv, page) && malloc_usable_size(pv) >= page);
  std::free(pv);
}

void cxx_forms() {
  delete launder(new int(7));
  delete[] launder(new int[100]);
  struct alignas(256) Wide {
    char c[3];
  };
  Wide* w = launder(new Wide[5]);
  CHECK(aligned_to(w, 256));
  delete[] w;
  void* huge = ::operator new (100, std::align_val_t{std::size_t{1} << 21});
  CHECK(aligned_to(huge, std::size_t{1} << 21));
  // The sized form is exercised by the delete expressions above (GCC sizes them; Clang 14 only
  // with -fsized-deallocation).
  ::operator delete (huge, std::align_val_t{std::size_t{1} << 21});
  ::operator delete[](::operator new[](64, std::nothrow), std::nothrow);
  ::operator delete (::operator new (64, std::align_val_t{64}, std::nothrow), std::align_val_t{64});
  CHECK(::operator new(launder(SIZE_MAX), std::nothrow) == nullptr);
  bool threw = false;
  try {
    ::operator delete[](::operator new[](launder(SIZE_MAX)));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);
}

// The new-handler the program sets is the one operator new calls, and the bad_alloc it throws is
// the one the program catches: the preloaded library carries a C++ runtime of its own, whose
// new-handler would be a different, empty one (docs/malloc.md "Start-up cost").
int handler_calls = 0;
void give_up_handler() {
  handler_calls++;
  std::set_new_handler(nullptr);  // the next failure throws
}
void throwing_handler() {
  handler_calls++;
  throw std::bad_alloc();
}

void new_handler_is_the_programs() {
  handler_calls = 0;
  std::set_new_handler(give_up_handler);
  bool threw = false;
  try {
    ::operator delete(::operator new(launder(SIZE_MAX)));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(handler_calls == 1);
  // The nothrow forms call it too, and return nullptr when it throws.
  handler_calls = 0;
  std::set_new_handler(throwing_handler);
  CHECK(::operator new(launder(SIZE_MAX), std::nothrow) == nullptr);
  CHECK(::operator new[](launder(SIZE_MAX), std::align_val_t{64}, std::nothrow) == nullptr);
  CHECK(handler_calls == 2);
  // Caught by the runtime that threw it: a catch in the library's own runtime would leave the
  // program's count of exceptions in flight at one for good.
  CHECK(std::uncaught_exceptions() == 0);
  // And nothing is called once it is unset.
  handler_calls = 0;
  std::set_new_handler(nullptr);
  CHECK(::operator new(launder(SIZE_MAX), std::nothrow) == nullptr);
  CHECK(handler_calls == 0);
}

// Objects allocated on one thread and freed on another, while every thread allocates.
void cross_thread() {
  constexpr int threads = 4;
  constexpr int per = 20000;
  std::vector<std::vector<void*>> made(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < per; i++) {
        const std::size_t size = static_cast<std::size_t>((i * 37 + t) % 3000 + 1);
        auto* p = static_cast<unsigned char*>(std::malloc(size));
        p[0] = p[size - 1] = static_cast<unsigned char>(t);
        made[static_cast<std::size_t>(t)].push_back(p);
      }
    });
  }
  for (auto& t : ts) t.join();
  ts.clear();
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([&, t] {
      for (void* p : made[static_cast<std::size_t>((t + 1) % threads)]) std::free(p);
    });
  }
  for (auto& t : ts) t.join();
}

// An interior free must come back as spanheap's report, proving spanheap serves malloc here.
void served_by_spanheap() {
  char path[] = "/tmp/spanheap-surface-XXXXXX";
  const int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  setenv("SPANHEAP_ERROR_LOG", path, 1);
  auto* p = static_cast<char*>(std::malloc(64));
  std::free(launder(p + 16));
  std::free(p);
  unsetenv("SPANHEAP_ERROR_LOG");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path);
  CHECK(text.str().rfind("spanheap: interior_free: ", 0) == 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  malloc_calloc_realloc();
  alignment();
  cxx_forms();
  new_handler_is_the_programs();
  cross_thread();
  served_by_spanheap();
  if (failures != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::puts("malloc surface: all checks passed");
  return 0;
}
