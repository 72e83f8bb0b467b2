// report: the one module that formats and delivers every error report
// ("spanheap: <kind>: <cause> (ptr=..., span=..., class=...)"). See docs/design.md §"Errors".
#pragma once

#include <spanheap/spanheap.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spanheap::detail {

class HeapState;

// What a report needs of the heap it concerns: the error counter and the handler. Defined with the
// aggregate (heap_state.cpp), so that report, the bottom layer, does not depend on HeapState.
struct ReportTarget {
  std::atomic<std::uint64_t>* errors;
  const ErrorHandler* handler;
};
ReportTarget report_target(const HeapState& heap) noexcept;

// Formats into a stack buffer (never allocating from spanheap) and delivers the report to the
// heap's handler, or to the default handler when `heap` is null. Re-entrant reports (a handler
// that reports again) go straight to the default handler, which aborts.
void deliver_report(const HeapState* heap, ErrorKind kind, const void* ptr, fmt::string_view text);

template <typename... Args>
[[gnu::cold]] void report(const HeapState* heap, ErrorKind kind, const void* ptr,
                          fmt::format_string<Args...> format, Args&&... args) {
  char buffer[768];
  auto result = fmt::format_to_n(buffer, sizeof buffer, format, std::forward<Args>(args)...);
  std::size_t n = result.size < sizeof buffer ? result.size : sizeof buffer;
  deliver_report(heap, kind, ptr, fmt::string_view(buffer, n));
}

// The default handler: prints the message to stderr and aborts.
[[noreturn]] void default_error_handler(const ErrorReport& report);

}  // namespace spanheap::detail
