// The seed families of the corpus generator (gen_corpus.cpp writes them out and checks them) and
// the helpers they build programs with. Programs are described in C++, never as bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "program.hpp"

namespace spanheap::fuzz::corpus {

struct Rng {  // fixed seed: the corpus is a pure function of this file
  std::uint64_t s = 0x5eed;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
};

std::vector<std::size_t> class_sizes();

HeapConfig config(unsigned procs, FlushPolicy flush, unsigned gc_percent = 0, bool fake = false,
                  unsigned limit_mib = 0);

using Seeds = std::map<std::string, Program>;

inline constexpr FlushPolicy policies[] = {FlushPolicy::lazy, FlushPolicy::eager};
std::string pname(FlushPolicy f);

// Seeds must fit the per-input budget (program.hpp: max_input_bytes, max_ops, max_boundaries), or
// the engines would cut them short; a seed that reaches deeper than one budget allows is split
// into several (each starts from a fresh heap, so each is built to reach its state on its own).
bool fits(const Program& p);

// Appends `ops` to `p` if the result still fits; false (and `p` unchanged) otherwise.
bool append_if_fits(Program& p, const std::vector<Op>& ops);

// One function per family, each adding its named programs to `out`.
// heap_seeds.cpp
void alloc_free_seeds(Seeds& out);
void procs_interleave_seeds(Seeds& out);
void page_heap_seeds(Seeds& out);
// bad_free_seeds.cpp: bad frees, and owner reuse (procs_interleave and bad_free have such seeds).
void bad_free_seeds(Seeds& out);
void reuse_seeds(Seeds& out, Target target);
// query_seeds.cpp
void size_classes_seeds(Seeds& out);
void pacing_seeds(Seeds& out);

}  // namespace spanheap::fuzz::corpus
