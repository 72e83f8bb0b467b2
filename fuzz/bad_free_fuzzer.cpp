// bad_free: valid work interleaved with every kind of bad free and misuse (interior pointers,
// double frees while pending and after reclaim — by a sweep several cycles back or by a
// collection — pointers inside freed objects around the free's own sweep, foreign pointers,
// objects of another heap, span tails, usable_size of interior pointers, oversized and misaligned
// allocations), under the reuse policy the input chooses. Each must be
// reported with exactly the ErrorKind the model predicts, change no counter, leave verify() clean,
// and never lose a live object or hand one out twice. The guarantee checked is the one
// docs/design.md §"Bad input" states: a second free is thrown only while the object's address
// holds no live object; after its slot was reused it would be a valid free of the new object,
// which no allocator can tell from a bad one, so the program does not throw it.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(bad_free)
