#!/bin/bash -eu
# Builds spanheap's fuzz targets the way OSS-Fuzz and ClusterFuzzLite expect: with the compiler,
# flags and engine of the environment ($CC, $CXX, $CFLAGS, $CXXFLAGS, $LIB_FUZZING_ENGINE), from
# the source in $SRC/spanheap, into $OUT. For every target T (fuzz/T_fuzzer.cpp):
#   $OUT/T_fuzzer                  the fuzzer (SPANHEAP_FUZZ_ENGINE=external, BUILD_TESTING=OFF)
#   $OUT/T_fuzzer.dict             fuzz/dict/T.dict
#   $OUT/T_fuzzer.options          [libfuzzer] max_len: the decoder's input bound, as ci/fuzz uses
#   $OUT/T_fuzzer_seed_corpus.zip  fuzz/corpus/T and fuzz/regressions/T
# The same file serves as OSS-Fuzz's projects/spanheap/build.sh (docs/fuzzing.md "Fuzzing at
# scale"); ci/oss-fuzz-check runs it on a developer's machine with the same environment.

src=${SPANHEAP_SRC:-$SRC/spanheap}
build=$WORK/spanheap-build
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)

# fmt is the library's one dependency. OSS-Fuzz compiles C++ against libc++, which a packaged fmt
# (built for libstdc++) cannot link with, so the Dockerfile clones fmt into $SRC/fmt and it is
# built here with the same compiler and flags; without that clone the system's fmt is used.
prefix=()
if [[ -d $SRC/fmt ]]; then
  cmake -S "$SRC/fmt" -B "$WORK/fmt-build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$WORK/deps" -DFMT_TEST=OFF -DFMT_DOC=OFF -DFMT_INSTALL=ON
  cmake --build "$WORK/fmt-build" -j "$(nproc)"
  cmake --install "$WORK/fmt-build"
  prefix=(-DCMAKE_PREFIX_PATH="$WORK/deps")
fi

# Debug keeps the library's asserts (no NDEBUG); the empty per-type flags leave optimisation and
# debug info to $CFLAGS/$CXXFLAGS, as the engines want.
cmake -S "$src" -B "$build" "${generator[@]}" "${prefix[@]}" \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG= -DCMAKE_CXX_FLAGS_DEBUG= \
  -DBUILD_TESTING=OFF -DSPANHEAP_WERROR=OFF \
  -DSPANHEAP_FUZZ_ENGINE=external -DSPANHEAP_FUZZ_ENGINE_LINK="$LIB_FUZZING_ENGINE"

targets=()
for f in "$src"/fuzz/*_fuzzer.cpp; do
  t=$(basename "$f" _fuzzer.cpp)
  targets+=("$t")
done
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/%/_fuzzer}"

max_len=$(sed -nE 's/.*max_input_bytes = ([0-9]+);.*/\1/p' "$src/fuzz/program/program.hpp")
[[ -n $max_len ]] || {
  echo "build.sh: cannot read max_input_bytes from fuzz/program/program.hpp" >&2
  exit 1
}
for t in "${targets[@]}"; do
  cp "$build/fuzz/${t}_fuzzer" "$OUT/"
  cp "$src/fuzz/dict/$t.dict" "$OUT/${t}_fuzzer.dict"
  printf '[libfuzzer]\nmax_len = %s\n' "$max_len" >"$OUT/${t}_fuzzer.options"
  rm -f "$OUT/${t}_fuzzer_seed_corpus.zip"
  find "$src/fuzz/corpus/$t" "$src/fuzz/regressions/$t" -type f ! -name 'README*' -print0 |
    xargs -0 zip -q -j "$OUT/${t}_fuzzer_seed_corpus.zip"
done
echo "build.sh: ${#targets[@]} fuzzers in $OUT: ${targets[*]/%/_fuzzer}"
