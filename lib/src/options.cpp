// options: Options::from_env (SPANHEAP_* variables), the range check of every option at heap
// creation, and VerifyResult printing.
#include <spanheap/spanheap.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>

#include "heap_state.hpp"
#include "report.hpp"

namespace spanheap {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

bool parse_size(const char* text, std::size_t& out) {
  char* end = nullptr;
  errno = 0;
  if (*text == '-') return false;  // strtoull would negate it into a huge value
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || errno == ERANGE) return false;
  std::size_t mult = 1;
  switch (*end) {
    case 'k':
    case 'K':
      mult = std::size_t{1} << 10;
      end++;
      break;
    case 'm':
    case 'M':
      mult = std::size_t{1} << 20;
      end++;
      break;
    case 'g':
    case 'G':
      mult = std::size_t{1} << 30;
      end++;
      break;
    default:
      break;
  }
  if (*end != '\0') return false;
  if (v > std::numeric_limits<std::size_t>::max() / mult) return false;
  out = static_cast<std::size_t>(v) * mult;
  return true;
}

bool parse_bool(const char* text) {
  const std::string_view v(text);
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

// No heap exists yet to report through: environment problems go to stderr, and the field keeps
// the value it had.
template <typename T>
void bad(const char* name, const char* value, const T& kept) {
  fmt::print(stderr, "spanheap: misuse: ignoring {}={}: not a valid value; using {}\n", name, value,
             kept);
}
void bad(const char* name, const char* value, FlushPolicy) {
  fmt::print(stderr, "spanheap: misuse: ignoring {}={}: not lazy or eager; using the default\n",
             name, value);
}
void bad(const char* name, const char* value, ReusePolicy) {
  fmt::print(stderr,
             "spanheap: misuse: ignoring {}={}: not owner or next_cycle; using the default\n", name,
             value);
}
void bad(const char* name, const char* value, ProcBinding) {
  fmt::print(stderr,
             "spanheap: misuse: ignoring {}={}: not automatic, fenced or off; using the default\n",
             name, value);
}
void bad(const char* name, const char* value, CheckLevel) {
  fmt::print(stderr,
             "spanheap: misuse: ignoring {}={}: not release, debug or expensive; using the "
             "default\n",
             name, value);
}

}  // namespace

Options Options::from_env(Options o) {
  std::size_t n = 0;
  auto number = [&](const char* name, auto& field) {
    if (const char* v = env(name)) {
      using Field = std::remove_reference_t<decltype(field)>;
      if (parse_size(v, n) && n <= std::numeric_limits<Field>::max()) {
        field = static_cast<Field>(n);
      } else {
        bad(name, v, field);
      }
    }
  };
  number("SPANHEAP_PROCS", o.procs);
  number("SPANHEAP_SWEEPERS", o.sweepers);
  number("SPANHEAP_GC_PERCENT", o.gc_percent);
  number("SPANHEAP_MEMORY_LIMIT", o.memory_limit);
  number("SPANHEAP_COLLECT_EVERY", o.debug.collect_every);
  number("SPANHEAP_ARENA_BYTES", o.arena_bytes);
  number("SPANHEAP_COMMIT_BYTES", o.commit_bytes);
  if (const char* v = env("SPANHEAP_FLUSH")) {
    if (std::strcmp(v, "lazy") == 0) {
      o.flush = FlushPolicy::lazy;
    } else if (std::strcmp(v, "eager") == 0) {
      o.flush = FlushPolicy::eager;
    } else {
      bad("SPANHEAP_FLUSH", v, o.flush);
    }
  }
  if (const char* v = env("SPANHEAP_REUSE")) {
    if (std::strcmp(v, "owner") == 0) {
      o.reuse = ReusePolicy::owner;
    } else if (std::strcmp(v, "next_cycle") == 0) {
      o.reuse = ReusePolicy::next_cycle;
    } else {
      bad("SPANHEAP_REUSE", v, o.reuse);
    }
  }
  if (const char* v = env("SPANHEAP_BINDING")) {
    if (std::strcmp(v, "automatic") == 0) {
      o.binding = ProcBinding::automatic;
    } else if (std::strcmp(v, "fenced") == 0) {
      o.binding = ProcBinding::fenced;
    } else if (std::strcmp(v, "off") == 0) {
      o.binding = ProcBinding::off;
    } else {
      bad("SPANHEAP_BINDING", v, o.binding);
    }
  }
  if (const char* v = env("SPANHEAP_CHECKS")) {
    if (std::strcmp(v, "release") == 0) {
      o.checks = CheckLevel::release;
    } else if (std::strcmp(v, "debug") == 0) {
      o.checks = CheckLevel::debug;
    } else if (std::strcmp(v, "expensive") == 0) {
      o.checks = CheckLevel::expensive;
    } else {
      bad("SPANHEAP_CHECKS", v, o.checks);
    }
  }
  if (const char* v = env("SPANHEAP_POISON")) o.debug.poison_freed = parse_bool(v);
  if (const char* v = env("SPANHEAP_CLOBBER")) o.debug.clobber_freed = parse_bool(v);
  if (const char* v = env("SPANHEAP_VERIFY")) o.debug.verify_each_cycle = parse_bool(v);
  if (const char* v = env("SPANHEAP_TRACE")) o.trace = parse_bool(v);
  if (const char* v = env("SPANHEAP_HUGE_PAGES")) o.huge_pages = parse_bool(v);
  return o;
}

Options Options::from_env() { return from_env(Options{}); }

namespace detail {
bool trace_from_env() {
  const char* v = env("SPANHEAP_TRACE");
  return v != nullptr && parse_bool(v);
}
}  // namespace detail

std::string VerifyResult::to_string() const {
  if (violations.empty()) return "heap verified: no violations";
  std::string s = fmt::format("{} violation(s):", violations.size());
  for (const Violation& v : violations) s += fmt::format("\n  [{}] {}", v.invariant, v.message);
  return s;
}

}  // namespace spanheap

namespace spanheap::detail {

void validate_options(HeapState& heap) {
  Options& o = heap.options;
  auto clamp = [&](const char* field, auto& value, auto low, auto high) {
    using T = std::remove_reference_t<decltype(value)>;
    if (value >= static_cast<T>(low) && value <= static_cast<T>(high)) return;
    const T used = value < static_cast<T>(low) ? static_cast<T>(low) : static_cast<T>(high);
    report(&heap, ErrorKind::misuse, nullptr, "Options::{} {} is outside [{}, {}]; using {}", field,
           value, low, high, used);
    value = used;
  };
  clamp("procs", o.procs, 0u, max_procs);
  clamp("sweepers", o.sweepers, 0u, max_sweepers);
  clamp("arena_bytes", o.arena_bytes, granule_size, max_arena_bytes);
  clamp("commit_bytes", o.commit_bytes, page_size, o.arena_bytes);
  o.commit_bytes = (o.commit_bytes + page_size - 1) & ~(page_size - 1);
  if (o.flush != FlushPolicy::lazy && o.flush != FlushPolicy::eager) {
    report(&heap, ErrorKind::misuse, nullptr, "Options::flush {} is not a FlushPolicy; using lazy",
           static_cast<unsigned>(o.flush));
    o.flush = FlushPolicy::lazy;
  }
  if (o.reuse != ReusePolicy::owner && o.reuse != ReusePolicy::next_cycle) {
    report(&heap, ErrorKind::misuse, nullptr, "Options::reuse {} is not a ReusePolicy; using owner",
           static_cast<unsigned>(o.reuse));
    o.reuse = ReusePolicy::owner;
  }
  if (o.binding != ProcBinding::automatic && o.binding != ProcBinding::fenced &&
      o.binding != ProcBinding::off) {
    report(&heap, ErrorKind::misuse, nullptr,
           "Options::binding {} is not a ProcBinding; using automatic",
           static_cast<unsigned>(o.binding));
    o.binding = ProcBinding::automatic;
  }
  if (o.checks != CheckLevel::release && o.checks != CheckLevel::debug &&
      o.checks != CheckLevel::expensive) {
    report(&heap, ErrorKind::misuse, nullptr,
           "Options::checks {} is not a CheckLevel; using release",
           static_cast<unsigned>(o.checks));
    o.checks = CheckLevel::release;
  }
}

}  // namespace spanheap::detail
