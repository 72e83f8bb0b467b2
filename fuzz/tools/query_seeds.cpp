// The seed families of the pure-function targets: size_classes (every class edge, the bounds) and
// pacing (the plans a heap makes, the trigger floor's edge, memory limits).
#include <fmt/format.h>

#include <cstdint>

#include "seeds.hpp"

namespace spanheap::fuzz::corpus {

void size_classes_seeds(Seeds& out) {
  // Every class edge (size and size + 1, four alignments), in as many seeds as the budget needs.
  Program p{.target = Target::size_classes, .config = {}, .ops = {}};
  int part = 0;
  for (std::size_t s : class_sizes()) {
    std::vector<Op> ops;
    for (std::size_t a : {1ul, 16ul, 64ul, 4096ul}) {
      ops.push_back(SizeQuery{.size = s, .align = a});
      ops.push_back(SizeQuery{.size = s + 1, .align = a});
    }
    if (!append_if_fits(p, ops)) {
      out[fmt::format("every_class_edge_{}", part++)] = p;
      p.ops = ops;
    }
  }
  out[fmt::format("every_class_edge_{}", part)] = p;
  Program big{.target = Target::size_classes, .config = {}, .ops = {}};
  for (std::size_t s : {0ul, 1ul, 32767ul, 32768ul, 32769ul, 1ul << 20, 0xffffffffUL})
    big.ops.push_back(SizeQuery{.size = s, .align = 16});
  out["bounds"] = big;
}

void pacing_seeds(Seeds& out) {
  // Plans a heap makes: small and large heaps at the usual gc_percent values, the trigger floor's
  // edge, memory limits with room and without, and the sweep target at 90% of the trigger.
  constexpr std::uint64_t mib = std::uint64_t{1} << 20;
  for (unsigned gc : {0u, 50u, 100u, 200u}) {
    Program usual{.target = Target::pacing, .config = {}, .ops = {}};
    for (std::uint64_t live : {std::uint64_t{0}, 64 * 1024ul, 4 * mib, 40 * mib, 3 * 1024 * mib}) {
      usual.ops.push_back(PacingQuery{.survivors = live,
                                      .gc_percent = gc,
                                      .memory_limit = 0,
                                      .committed = live + live / 4,
                                      .pages_to_sweep = live / page_size + 3,
                                      .allocated = live / 2});
    }
    out[fmt::format("usual_heaps_gc{}", gc)] = usual;
  }
  Program edges{.target = Target::pacing, .config = {}, .ops = {}};
  const std::uint64_t floor_live = 4 * mib;  // gc 100: survivors at the floor, either side
  for (std::uint64_t live : {floor_live - 1, floor_live, floor_live + 1})
    edges.ops.push_back(PacingQuery{.survivors = live,
                                    .gc_percent = 100,
                                    .memory_limit = 0,
                                    .committed = live,
                                    .pages_to_sweep = 512,
                                    .allocated = floor_live / 10 * 9});
  for (std::uint64_t committed : {0ul, 50 * mib, 89 * mib, 90 * mib, 91 * mib, 200 * mib})
    edges.ops.push_back(PacingQuery{.survivors = 30 * mib,
                                    .gc_percent = 100,
                                    .memory_limit = 100 * mib,
                                    .committed = committed,
                                    .pages_to_sweep = 4096,
                                    .allocated = 9 * mib});
  edges.ops.push_back(PacingQuery{.survivors = 0,
                                  .gc_percent = 0,
                                  .memory_limit = 64 * mib,
                                  .committed = 8 * mib,
                                  .pages_to_sweep = 1,
                                  .allocated = 1});
  out["floor_and_limits"] = edges;
}

}  // namespace spanheap::fuzz::corpus
