// procs_interleave: several Ps driven from one thread through explicit Proc handles, with the
// input choosing the schedule at operation granularity: which P allocates or frees (including
// frees of other Ps' objects), stop-the-world cycle starts, a P waking (lazy flush at acquire) or
// staying idle, flush_idle, the ragged barrier, flush_all, proportional sweep and sweep_one. The
// oracle also predicts which Ps are stale and how many lazy and barrier flushes each step makes.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(procs_interleave)
