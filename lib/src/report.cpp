// report: see report.hpp.
#include "report.hpp"

#include <cstdio>
#include <cstdlib>

#include "heap_state.hpp"

namespace spanheap {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_free:
      return "invalid_free";
    case ErrorKind::interior_free:
      return "interior_free";
    case ErrorKind::double_free:
      return "double_free";
    case ErrorKind::foreign_free:
      return "foreign_free";
    case ErrorKind::out_of_memory:
      return "out_of_memory";
    case ErrorKind::size_overflow:
      return "size_overflow";
    case ErrorKind::bad_alignment:
      return "bad_alignment";
    case ErrorKind::misuse:
      return "misuse";
    case ErrorKind::corruption:
      return "corruption";
  }
  return "unknown";
}

}  // namespace spanheap

namespace spanheap::detail {
namespace {
thread_local int report_depth = 0;
}

void default_error_handler(const ErrorReport& report) {
  std::fputs(report.message.c_str(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  std::abort();
}

void deliver_report(const HeapState* heap, ErrorKind kind, const void* ptr, fmt::string_view text) {
  char line[1024];
  auto r = fmt::format_to_n(line, sizeof line - 1, "spanheap: {}: {}", to_string(kind), text);
  const std::size_t n = r.size < sizeof line - 1 ? r.size : sizeof line - 1;
  ErrorReport report{kind, ptr, std::string(line, n)};
  if (heap != nullptr) {
    const_cast<HeapState*>(heap)->counters.errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (report_depth > 0 || heap == nullptr || !heap->options.error_handler) {
    default_error_handler(report);
  }
  report_depth++;
  heap->options.error_handler(report);
  report_depth--;
}

void check_failed(const HeapState* heap, const char* expr, const char* file, int line,
                  const char* detail) {
  const char* base = file;
  for (const char* c = file; *c != '\0'; c++)
    if (*c == '/') base = c + 1;
  report(heap, ErrorKind::corruption, nullptr, "check failed: {} ({}) at {}:{}", detail, expr, base,
         line);
}

}  // namespace spanheap::detail
