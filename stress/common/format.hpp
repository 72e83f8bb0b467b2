// Number formatting for the stress drivers' progress lines and summaries.
#pragma once

#include <spanheap/spanheap.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace spanheap::stress {

std::string human(double v);           // 1.23M, 4.5k, 17
std::string mib(std::size_t b);        // "3.2 MiB"
std::string micros(std::uint64_t ns);  // "41.2 us", "12.3 ms" from 10 ms on
// Percentile of the heap's pause histogram, as the upper bound of the bucket that holds it.
std::string histogram_percentile(const Stats& s, double q);
// The q-quantile of an ascending sample (0 when empty).
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double q);

}  // namespace spanheap::stress
