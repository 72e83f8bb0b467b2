// options: Options::from_env (SPANHEAP_* variables) and VerifyResult printing.
#include <spanheap/spanheap.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace spanheap {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

bool parse_size(const char* text, std::size_t& out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text) return false;
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
  out = static_cast<std::size_t>(v) * mult;
  return true;
}

bool parse_bool(const char* text) {
  const std::string_view v(text);
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

void bad(const char* name, const char* value) {
  fmt::print(stderr, "spanheap: ignoring {}={}: not a valid value\n", name, value);
}

}  // namespace

Options Options::from_env(Options o) {
  std::size_t n = 0;
  auto number = [&](const char* name, auto& field) {
    if (const char* v = env(name)) {
      if (parse_size(v, n)) {
        field = static_cast<std::remove_reference_t<decltype(field)>>(n);
      } else {
        bad(name, v);
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
      bad("SPANHEAP_FLUSH", v);
    }
  }
  if (const char* v = env("SPANHEAP_REUSE")) {
    if (std::strcmp(v, "owner") == 0) {
      o.reuse = ReusePolicy::owner;
    } else if (std::strcmp(v, "next_cycle") == 0) {
      o.reuse = ReusePolicy::next_cycle;
    } else {
      bad("SPANHEAP_REUSE", v);
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
      bad("SPANHEAP_CHECKS", v);
    }
  }
  if (const char* v = env("SPANHEAP_POISON")) o.debug.poison_freed = parse_bool(v);
  if (const char* v = env("SPANHEAP_CLOBBER")) o.debug.clobber_freed = parse_bool(v);
  if (const char* v = env("SPANHEAP_VERIFY")) o.debug.verify_each_cycle = parse_bool(v);
  if (const char* v = env("SPANHEAP_TRACE")) o.trace = parse_bool(v);
  return o;
}

Options Options::from_env() { return from_env(Options{}); }

std::string VerifyResult::to_string() const {
  if (violations.empty()) return "heap verified: no violations";
  std::string s = fmt::format("{} violation(s):", violations.size());
  for (const Violation& v : violations) s += fmt::format("\n  [{}] {}", v.invariant, v.message);
  return s;
}

}  // namespace spanheap
