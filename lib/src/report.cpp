// report: see report.hpp.
#include "report.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "affinity.hpp"

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

namespace {
[[noreturn]] void handler_threw(const ErrorReport& report, const char* what) {
  char line[1200];
  auto r = fmt::format_to_n(line, sizeof line - 1,
                            "spanheap: misuse: the error handler threw ({}) while handling: {}",
                            what, report.message);
  const std::size_t n = r.size < sizeof line - 1 ? r.size : sizeof line - 1;
  default_error_handler(ErrorReport{ErrorKind::misuse, report.ptr, std::string(line, n)});
}
}  // namespace

void deliver_report(const HeapState* heap, ErrorKind kind, const void* ptr, fmt::string_view text) {
  // From here on anything may call the heap: the message's string under the malloc shim, the
  // handler itself. A report can come from inside a call, so first the scope that sends such
  // calls to the paths that refuse to enter the P that call holds.
  CallbackScope scope;
  char line[1024];
  auto r = fmt::format_to_n(line, sizeof line - 1, "spanheap: {}: {}", to_string(kind), text);
  const std::size_t n = r.size < sizeof line - 1 ? r.size : sizeof line - 1;
  ErrorReport report{kind, ptr, std::string(line, n)};
  const ErrorHandler* handler = nullptr;
  if (heap != nullptr) {
    const ReportTarget target = report_target(*heap);
    target.errors->fetch_add(1, std::memory_order_relaxed);
    handler = target.handler;
  }
  if (report_depth > 0 || handler == nullptr || !*handler) default_error_handler(report);
  // The handler must not throw: a report can come from inside a heap call, with a P, the cycle
  // lock or a central lock held, and unwinding through them would wedge the heap. Rejected
  // alternative: exception safety on every path that reports (guards for each P, lock and
  // stopped world), which costs the fast paths and every future edit for handlers that do
  // nothing useful by throwing. So a throw is itself a report, and fatal.
  report_depth++;
  try {
    (*handler)(report);
  } catch (const std::exception& e) {
    handler_threw(report, e.what());
  } catch (...) {
    handler_threw(report, "not a std::exception");
  }
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
