// heap_state: what lower layers ask of the aggregate without knowing its layout.
#include "heap_state.hpp"

#include "report.hpp"

namespace spanheap::detail {

ReportTarget report_target(const HeapState& heap) noexcept {
  // The counter is cumulative and atomic: counting a report on a const heap changes no state a
  // reader of the const view relies on.
  return ReportTarget{&const_cast<HeapState&>(heap).counters.errors, &heap.options.error_handler};
}

}  // namespace spanheap::detail
