// The names of targets, bad-free kinds and OS faults (program.hpp), as traces and the replay
// tool's command line spell them.
#include "program.hpp"

namespace spanheap::fuzz {

const char* to_string(Target target) noexcept {
  switch (target) {
    case Target::alloc_free:
      return "alloc_free";
    case Target::procs_interleave:
      return "procs_interleave";
    case Target::bad_free:
      return "bad_free";
    case Target::page_heap:
      return "page_heap";
    case Target::size_classes:
      return "size_classes";
    case Target::pacing:
      return "pacing";
  }
  return "?";
}

std::optional<Target> target_from_string(std::string_view name) noexcept {
  for (Target t : all_targets) {
    if (name == to_string(t)) return t;
  }
  return std::nullopt;
}

const char* to_string(BadKind kind) noexcept {
  switch (kind) {
    case BadKind::interior:
      return "interior";
    case BadKind::double_pending:
      return "double_pending";
    case BadKind::double_reclaimed:
      return "double_reclaimed";
    case BadKind::foreign:
      return "foreign";
    case BadKind::other_heap:
      return "other_heap";
    case BadKind::span_tail:
      return "span_tail";
    case BadKind::usable_interior:
      return "usable_interior";
    case BadKind::pending_interior:
      return "pending_interior";
    case BadKind::reclaimed_interior:
      return "reclaimed_interior";
  }
  return "?";
}

const char* to_string(OsFault fault) noexcept {
  switch (fault) {
    case OsFault::fail_reserves:
      return "fail_reserves";
    case OsFault::fail_commits:
      return "fail_commits";
    case OsFault::cap_committed:
      return "cap_committed";
  }
  return "?";
}

}  // namespace spanheap::fuzz
