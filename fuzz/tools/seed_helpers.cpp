// The helpers every seed family builds its programs with (seeds.hpp).
#include <spanheap/testing.hpp>

#include "seeds.hpp"

namespace spanheap::fuzz::corpus {

std::vector<std::size_t> class_sizes() {
  std::vector<std::size_t> out;
  for (const auto& c : testing::size_classes()) out.push_back(c.size);
  return out;
}

HeapConfig config(unsigned procs, FlushPolicy flush, unsigned gc_percent, bool fake,
                  unsigned limit_mib) {
  return HeapConfig{.procs = procs,
                    .flush = flush,
                    .gc_percent = gc_percent,
                    .arena_mib = 1,
                    .fake_os = fake,
                    .memory_limit_mib = limit_mib};
}

std::string pname(FlushPolicy f) { return f == FlushPolicy::lazy ? "lazy" : "eager"; }

bool fits(const Program& p) {
  const auto bytes = encode(p);
  return bytes && bytes->size() <= max_input_bytes;
}

bool append_if_fits(Program& p, const std::vector<Op>& ops) {
  Program q = p;
  q.ops.insert(q.ops.end(), ops.begin(), ops.end());
  if (!fits(q)) return false;
  p = std::move(q);
  return true;
}

}  // namespace spanheap::fuzz::corpus
