// gen_corpus: writes the seed corpus (fuzz/corpus/<target>/seed-*) and the dictionaries
// (fuzz/dict/<target>.dict) from the programs of the seed families (seeds.hpp), built with the
// Program types and encode(), so the seeds reach deep states on purpose: every size class, many
// cycles, large objects, stale Ps and lazy flushes, every bad-free kind, OS failures. Programs are
// described in C++, never as bytes.
//
//   spanheap_fuzz_gen_corpus FUZZ_DIR          (re)write FUZZ_DIR/corpus/*/seed-* and FUZZ_DIR/dict
//   spanheap_fuzz_gen_corpus --check FUZZ_DIR  fail if a generated file is missing or differs
//
// Files that fuzzing added (named by SHA-1) are left alone. docs/fuzzing.md explains the corpus.
#include <fmt/format.h>
#include <spanheap/testing.hpp>
#include <spanheap/version.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "program.hpp"
#include "seeds.hpp"

namespace fs = std::filesystem;
using namespace spanheap;
using namespace spanheap::fuzz;
using namespace spanheap::fuzz::corpus;

namespace {

// Dictionary tokens: the encoded bytes of single interesting operations (the header removed), so
// libFuzzer/AFL++ can splice whole operations.
std::vector<std::vector<std::uint8_t>> tokens(Target target, const Seeds& seeds) {
  std::vector<std::vector<std::uint8_t>> out;
  std::map<std::size_t, int> per_kind;
  for (const auto& [name, program] : seeds) {
    for (const Op& op : program.ops) {
      if (per_kind[op.index()]++ >= 6) continue;
      Program one{.target = target, .config = program.config, .ops = {op}};
      auto bytes = encode(one);
      if (!bytes) continue;
      const std::size_t header = has_heap(target) ? 2 : 0;
      out.emplace_back(bytes->begin() + static_cast<std::ptrdiff_t>(header), bytes->end());
    }
  }
  return out;
}

std::string dict_text(Target target, const Seeds& seeds) {
  std::string text = fmt::format(
      "# {} dictionary: whole encoded operations, written by fuzz/tools/gen_corpus.cpp.\n",
      to_string(target));
  int n = 0;
  for (const auto& tok : tokens(target, seeds)) {
    std::string s;
    for (auto b : tok) s += fmt::format("\\x{:02x}", b);
    text += fmt::format("op{}=\"{}\"\n", n++, s);
  }
  return text;
}

// With stdio rather than istreambuf_iterator: GCC 12 at -O2 (the release preset) reports a
// potential null dereference inside libstdc++'s streambuf for the iterator form, and -Werror
// made the release preset's full build fail.
std::string read(const fs::path& p) {
  std::string text;
  std::FILE* f = std::fopen(p.c_str(), "rb");
  if (f == nullptr) return text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) != 0;) text.append(buf, n);
  std::fclose(f);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (spanheap::print_version_if_asked(argc, argv)) return 0;
  const bool check = argc == 3 && std::string(argv[1]) == "--check";
  if (!(argc == 2 || check)) {
    fmt::print(stderr, "usage: {} [--check] FUZZ_DIR\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[argc - 1];
  int bad = 0, written = 0;
  auto emit = [&](const fs::path& path, const std::string& content) {
    if (check) {
      if (!fs::exists(path) || read(path) != content) {
        fmt::print(stderr, "{} is missing or stale: run fuzz/tools/gen_corpus (docs/fuzzing.md)\n",
                   path.string());
        ++bad;
      }
      return;
    }
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    ++written;
  };
  for (Target t : all_targets) {
    Seeds seeds;
    switch (t) {
      case Target::alloc_free:
        alloc_free_seeds(seeds);
        break;
      case Target::procs_interleave:
        procs_interleave_seeds(seeds);
        break;
      case Target::bad_free:
        bad_free_seeds(seeds);
        break;
      case Target::page_heap:
        page_heap_seeds(seeds);
        break;
      case Target::size_classes:
        size_classes_seeds(seeds);
        break;
      case Target::pacing:
        pacing_seeds(seeds);
        break;
    }
    reuse_seeds(seeds, t);
    for (const auto& [name, program] : seeds) {
      const auto bytes = encode(program);
      if (bytes && bytes->size() > max_input_bytes) {
        fmt::print(stderr, "{}/{}: {} bytes, more than max_input_bytes\n", to_string(t), name,
                   bytes->size());
        return 1;
      }
      if (!bytes || decode(t, *bytes) != program) {
        fmt::print(stderr, "{}/{}: does not encode to bytes that decode back\n{}{}", to_string(t),
                   name, to_trace(program),
                   bytes ? to_trace(decode(t, *bytes)) : "(no encoding)\n");
        return 1;
      }
      emit(root / "corpus" / to_string(t) / ("seed-" + name),
           std::string(bytes->begin(), bytes->end()));
    }
    emit(root / "dict" / (std::string(to_string(t)) + ".dict"), dict_text(t, seeds));
  }
  if (check) {
    if (bad != 0) return 1;
    fmt::print("corpus and dictionaries are up to date\n");
  } else {
    fmt::print("wrote {} files under {}\n", written, root.string());
  }
  return 0;
}
