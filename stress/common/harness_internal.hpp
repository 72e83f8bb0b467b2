// What the stress harness's own files share (harness.cpp, watchdog.cpp, command_line.cpp,
// summary.cpp) and drivers do not see: which sanitizer the build carries, the repro line and the
// watchdog's words, and the command-line spellings the repro and summary lines reuse.
#pragma once

#include <spanheap/spanheap.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPANHEAP_STRESS_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define SPANHEAP_STRESS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SPANHEAP_STRESS_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SPANHEAP_STRESS_ASAN 1
#endif

#if defined(SPANHEAP_STRESS_TSAN) || defined(SPANHEAP_STRESS_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

namespace spanheap::stress::detail {

// Sanitizer hooks (watchdog.cpp): a sanitizer report ends the process inside the runtime, so the
// repro line is prepared in advance (Run::heap_options) and printed from the runtime's callbacks.
extern char g_repro[4096];
void print_sanitizer_repro();

// The watchdog: a detached thread that touches no heap and no driver object, only these words.
// While the timed loop runs, `g_watch_mark_ns` is the last time the monitor saw the driver's own
// counters move; afterwards it is when wind-down began (the joins, the final cycle and sweep, the
// heap's destructor). Past `g_watch_limit_ns` the world is taken to be stuck: FAIL, the repro line,
// abort (a core for the debugger). It must not depend on heap.stats(): a stuck world may block it.
extern std::atomic<std::int64_t> g_watch_mark_ns;
extern std::atomic<std::int64_t> g_watch_limit_ns;
extern std::atomic<int> g_watch_phase;  // 0 off, 1 timed loop, 2 winding down
extern char g_driver_name[64];
// When each collector thread entered its current collect() (0 = not in one). A cycle that does
// not return while mutators keep going (a ragged barrier waiting for a P that never flushes) is
// a hang the operation counters alone would miss.
inline constexpr int max_watched_collectors = 32;
extern std::atomic<std::int64_t> g_collect_since_ns[max_watched_collectors];
extern std::atomic<std::int64_t> g_collect_limit_ns;

std::int64_t now_ns();
// The watchdog thread's body (started once, detached, by Run::monitor).
void watchdog_main();

// command_line.cpp: the flags' spellings, and quoting for a shell command line.
const char* to_flag(FlushPolicy f);
const char* to_flag(CheckLevel c);
std::string shell_quote(std::string_view s);

}  // namespace spanheap::stress::detail
