// fork_malloc_stress: fork under load with spanheap as the process malloc (docs/malloc.md). Mutator
// threads allocate, check and free objects of every size through malloc/free and hand some to each
// other, while the main thread forks children that allocate, free (also objects inherited from the
// parent), start a thread of their own and exit. A child that does not exit within --child-timeout
// seconds is killed and counts as a failure: a lock held across fork (the heap's, a sweeper's, the
// shim's) shows up as a hang, never as a stuck test.
//
//   fork_malloc_stress [--smoke] [--seconds S] [--threads N] [--seed N] [--child-timeout S]
#include <spanheap/version.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Config {
  double seconds = 20;
  unsigned threads = 3;
  std::uint64_t seed = 1;
  double child_timeout = 20;
  bool smoke = false;
};

[[noreturn]] void usage_error(const char* what) {
  std::fprintf(stderr,
               "fork_malloc_stress: %s\nusage: fork_malloc_stress [--smoke] [--seconds S] "
               "[--threads N] [--seed N] [--child-timeout S]\n",
               what);
  std::exit(2);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--smoke") {
      c.smoke = true;
      c.seconds = 4;
    } else if (a == "--seconds") {
      c.seconds = std::atof(value());
    } else if (a == "--threads") {
      c.threads = static_cast<unsigned>(std::atoi(value()));
    } else if (a == "--seed") {
      c.seed = std::strtoull(value(), nullptr, 10);
    } else if (a == "--child-timeout") {
      c.child_timeout = std::atof(value());
    } else {
      usage_error(("unknown flag " + a).c_str());
    }
  }
  if (c.threads == 0 || c.seconds <= 0 || c.child_timeout <= 0) usage_error("bad value");
  return c;
}

std::uint64_t next(std::uint64_t& s) {  // splitmix64
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// An object carries its size and a byte derived from its address, so any overlap or stray write
// between two live objects is caught at the check before its free.
struct Object {
  unsigned char* p;
  std::size_t size;
};

Object make(std::uint64_t& rng) {
  const std::uint64_t r = next(rng);
  std::size_t size = (r % 100) < 2 ? 40000 + r % 300000 : 1 + (r >> 8) % 4000;
  auto* p = static_cast<unsigned char*>(std::malloc(size));
  if (p == nullptr) {
    std::fprintf(stderr, "fork_malloc_stress: malloc(%zu) returned NULL\n", size);
    std::abort();
  }
  std::memset(p, static_cast<int>(reinterpret_cast<std::uintptr_t>(p) >> 4 & 0xFF), size);
  return {p, size};
}

bool intact(const Object& o) {
  const auto want = static_cast<unsigned char>(reinterpret_cast<std::uintptr_t>(o.p) >> 4 & 0xFF);
  return o.p[0] == want && o.p[o.size / 2] == want && o.p[o.size - 1] == want;
}

void check_and_free(const Object& o, const char* where) {
  if (!intact(o)) {
    std::fprintf(stderr, "fork_malloc_stress: %s: object %p (%zu bytes) was overwritten\n", where,
                 static_cast<void*>(o.p), o.size);
    std::abort();
  }
  std::free(o.p);
}

std::mutex exchange_mu;
std::vector<Object> exchange;  // objects handed between threads (the vector itself is malloc'd)
std::atomic<bool> stop{false};
std::atomic<std::uint64_t> ops{0};

void mutator(std::uint64_t seed) {
  std::uint64_t rng = seed;
  std::vector<Object> live(256, Object{nullptr, 0});
  std::uint64_t n = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    Object& slot = live[next(rng) % live.size()];
    if (slot.p != nullptr) check_and_free(slot, "mutator");
    slot = make(rng);
    if (next(rng) % 16 == 0) {
      std::lock_guard<std::mutex> g(exchange_mu);
      exchange.push_back(slot);
      slot = exchange.front();
      exchange.erase(exchange.begin());
    }
    if (++n % 1024 == 0) ops.fetch_add(1024, std::memory_order_relaxed);
  }
  for (Object& o : live)
    if (o.p != nullptr) check_and_free(o, "mutator wind-down");
}

// The child: its copy of the parent's heap must serve malloc and free at once, including frees of
// objects the parent made, and a new thread must be able to allocate too.
[[noreturn]] void child(std::uint64_t seed, const std::vector<Object>& inherited) {
  std::uint64_t rng = seed;
  for (const Object& o : inherited) check_and_free(o, "child (inherited)");
  std::vector<Object> mine;
  for (int i = 0; i < 3000; i++) {
    mine.push_back(make(rng));
    if (next(rng) % 3 == 0) {
      check_and_free(mine.back(), "child");
      mine.pop_back();
    }
  }
  std::thread helper([seed] {
    std::uint64_t r = seed ^ 0xABCDEF;
    for (int i = 0; i < 2000; i++) check_and_free(make(r), "child thread");
  });
  helper.join();
  for (const Object& o : mine) check_and_free(o, "child wind-down");
  std::_Exit(0);
}

// Waits for `pid` up to `timeout` seconds; kills it after that. Returns a description of the
// failure, or "" when the child exited 0.
std::string reap(pid_t pid, double timeout) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return "waitpid failed";
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "child hung (killed after the timeout): a lock held across fork?";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFSIGNALED(status)) return "child died of signal " + std::to_string(WTERMSIG(status));
  return "child exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  const Config cfg = parse(argc, argv);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < cfg.threads; t++) threads.emplace_back(mutator, cfg.seed * 1000 + t);
  std::uint64_t rng = cfg.seed;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(cfg.seconds);
  unsigned forks = 0;
  std::string failure;
  while (failure.empty() && std::chrono::steady_clock::now() < end) {
    std::vector<Object> inherited;
    for (int i = 0; i < 32; i++) inherited.push_back(make(rng));
    const std::uint64_t child_seed = next(rng);
    const pid_t pid = fork();
    if (pid < 0) {
      failure = "fork failed";
      break;
    }
    if (pid == 0) child(child_seed, inherited);
    for (const Object& o : inherited) check_and_free(o, "parent");
    failure = reap(pid, cfg.child_timeout);
    forks++;
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  for (const Object& o : exchange) check_and_free(o, "exchange");
  std::printf("fork_malloc_stress: %u fork(s), %llu mutator ops, %u thread(s), %.1f s\n", forks,
              static_cast<unsigned long long>(ops.load()), cfg.threads, cfg.seconds);
  if (!failure.empty()) {
    std::fprintf(stderr, "fork_malloc_stress: FAILED after %u fork(s): %s\n", forks,
                 failure.c_str());
    std::fprintf(stderr, "repro: %s --seed %llu --seconds %g --threads %u\n", argv[0],
                 static_cast<unsigned long long>(cfg.seed), cfg.seconds, cfg.threads);
    return 1;
  }
  return 0;
}
