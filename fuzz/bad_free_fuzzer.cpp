// bad_free: valid work interleaved with every kind of bad free and misuse (interior pointers,
// double frees while pending and after reclaim, foreign pointers, objects of another heap, span
// tails, usable_size of interior pointers, oversized and misaligned allocations). Each must be
// reported with exactly the ErrorKind the model predicts, change no counter, leave verify() clean,
// and never lose a live object or hand one out twice.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(bad_free)
