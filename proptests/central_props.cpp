// central_props: where spans live (DESIGN §8 Membership).
// Covers: a small in-use span is in exactly one place — one central set of its own class (partial
// or full × swept or unswept, matching its sweepgen and count) or one cache (then sg+1/sg+3, in the
// P that the snapshot names, one span per class per P); a freed span is in the page heap's free
// structure only, with count 0 and an earlier sweepgen; a span moves between places only by the
// steps that may move it (refill, flush, sweep, the bump); central hands out a partial span before
// growing; stats totals equal the sum over spans after every move.
#include "support/heap_model.hpp"
#include "support/prop_runner.hpp"

namespace spanheap::props {

// Many Ps sharing few classes: refills take spans that other Ps flushed, frees land in spans
// cached elsewhere, flush_all and the barrier move everything back.
SPANHEAP_PROP(Central, OnePlacePerSpan, 60, 60, ()) {
  HeapSetup s;
  s.procs = 4;
  CommandMix mix;
  mix.small_sizes = {48, 1024, 8192};
  mix.fill = 8;
  mix.flush_all = 5;
  mix.flush_idle = 6;
  mix.allocate_large = 2;
  CheckSet checks;
  checks.slots = false;  // span_props owns the slot scans; keep this one about membership
  check_stateful(s, mix, checks);
}

SPANHEAP_PROP(Central, OnePlacePerSpanEager, 40, 60, ()) {
  HeapSetup s;
  s.procs = 3;
  s.flush = FlushPolicy::eager;
  CommandMix mix;
  mix.small_sizes = {48, 1024, 8192};
  mix.fill = 8;
  mix.flush_all = 3;
  check_stateful(s, mix);
}

}  // namespace spanheap::props
