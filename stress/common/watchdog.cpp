// The stress harness's watchdog (a stuck world fails the run with every thread's stack and the
// repro line) and its sanitizer hooks (the repro line after a sanitizer's report).
#include "harness.hpp"
#include "harness_internal.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace spanheap::stress::detail {

char g_repro[4096];
namespace {
std::atomic<bool> g_repro_printed{false};
}  // namespace

void print_sanitizer_repro() {
  if (g_repro[0] == 0 || g_repro_printed.exchange(true)) return;
  std::fputs("\nFAIL: sanitizer report (see above)\n", stderr);
  std::fputs(g_repro, stderr);
  std::fflush(stderr);
}

std::atomic<std::int64_t> g_watch_mark_ns{0};
std::atomic<std::int64_t> g_watch_limit_ns{0};
std::atomic<int> g_watch_phase{0};
char g_driver_name[64];
std::atomic<std::int64_t> g_collect_since_ns[max_watched_collectors];
std::atomic<std::int64_t> g_collect_limit_ns{0};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void watchdog_main() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    int phase = g_watch_phase.load();
    if (phase == 0) continue;
    const std::int64_t now = now_ns();
    std::int64_t idle = now - g_watch_mark_ns.load();
    const char* what =
        phase == 1 ? "no cycle and no operation" : "still not wound down after the run";
    if (idle <= g_watch_limit_ns.load()) {
      idle = 0;
      for (auto& since : g_collect_since_ns) {
        std::int64_t t = since.load();
        if (t != 0 && now - t > idle) idle = now - t;
      }
      if (idle <= g_collect_limit_ns.load()) continue;
      what = "a collect() call (or a heap's destruction) has not returned";
    }
    std::fprintf(stderr,
                 "\nFAIL [%s]: %s for %.0f s: the world looks stuck (a deadlock in a stop, a "
                 "cycle or a sweep?); aborting for a core\n%s",
                 g_driver_name, what, static_cast<double>(idle) / 1e9, g_repro);
    // Every thread's stack, when gdb is at hand: the hang is usually plain to see in them.
    char cmd[256];
    std::snprintf(cmd, sizeof cmd,
                  "command -v gdb >/dev/null 2>&1 && timeout 120 gdb -p %d -batch -nx -ex "
                  "'thread apply all bt 40' 1>&2 2>/dev/null",
                  static_cast<int>(getpid()));
    std::fflush(stderr);
    std::fflush(stdout);
    if (std::system(cmd) != 0) std::fputs("(no gdb: no stacks)\n", stderr);
    std::fputs(g_repro, stderr);
    std::abort();
  }
}

}  // namespace spanheap::stress::detail

#if defined(SPANHEAP_STRESS_TSAN)
// Called by the TSan runtime for every report it prints (a weak hook in compiler-rt).
extern "C" void __tsan_on_report(const void*) { spanheap::stress::detail::print_sanitizer_repro(); }
#endif

namespace spanheap::stress {
using namespace detail;

void Run::collect_begins(unsigned collector) {
  g_collect_since_ns[collector % max_watched_collectors].store(now_ns());
}

void Run::collect_ends(unsigned collector) {
  g_collect_since_ns[collector % max_watched_collectors].store(0);
}

}  // namespace spanheap::stress
