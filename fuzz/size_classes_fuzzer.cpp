// size_classes: testing::size_to_class on arbitrary sizes and alignments, checked against the
// class table (testing::size_classes): the class fits and keeps the alignment, no smaller class
// would, class sizes round-trip, spans hold nelems * size + tail waste with waste <= 12.5%.
#include "program/fuzz_target.hpp"

SPANHEAP_FUZZ_TARGET(size_classes)
