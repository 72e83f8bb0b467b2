// pacing: the pacer's arithmetic (testing::plan_pacing, testing::sweep_target) on numbers of any
// magnitude, checked against the contract of lib/src/pacing.hpp computed in 128-bit integers and
// long double: the trigger, the proportional sweep ratio, and the pages owed after N bytes
// (saturating, monotone, every page owed at 90% of the trigger). UBSan watches the conversions.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(pacing)
