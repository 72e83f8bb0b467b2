# shellcheck shell=bash
# The real programs that run on spanheap's malloc (docs/malloc.md), shared by ci/selfhost (which
# fails on any report or non-zero exit) and ci/bench's part "programs" (which times them under
# every allocator). Source it after ci/lib.sh.
#
#   program_script NAME SCALE WORK   prints the bash script that runs program NAME at SCALE
#                                    (smoke or full) in the scratch folder WORK
#
# Python runs with PYTHONMALLOC=malloc so its objects go through malloc, not its own arenas.

# Everything ci/selfhost runs; ci/bench times all but "project" (its build is timed as gxx).
selfhost_programs=(project python sqlite git node)
# shellcheck disable=SC2034  # read by ci/bench
bench_programs=(python sqlite git node gxx)

program_script() {
  local name="$1" scale="$2" work="$3" root="$SPANHEAP_ROOT" jobs
  jobs="$(job_count)"
  local rounds_py=20 rounds_js=8 rows=300000
  if [[ "$scale" == smoke ]]; then
    rounds_py=3 rounds_js=2 rows=50000
  fi
  case "$name" in
    project)
      # snmalloc's self-host idea: the project's own configure, build and unit tests, every
      # compiler, linker and test process on spanheap (Debug: -O0 compiles fastest).
      echo "cmake -S '$root' -B '$work/project' -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null &&" \
        "cmake --build '$work/project' -j$jobs --target spanheap_unit_tests >/dev/null &&" \
        "ctest --test-dir '$work/project' -L unit -j$jobs | tail -n 3"
      ;;
    python)
      echo "PYTHONMALLOC=malloc python3 '$root/bench/programs/threads.py' $rounds_py"
      ;;
    sqlite)
      echo "rm -f '$work/rows.db' && { echo 'CREATE TEMP TABLE params(n); INSERT INTO params VALUES($rows);';" \
        "cat '$root/bench/programs/rows.sql'; } | sqlite3 '$work/rows.db'"
      ;;
    git)
      echo "rm -rf '$work/clone' && git clone -q --no-local '$root' '$work/clone' &&" \
        "git -C '$work/clone' gc -q && git -C '$work/clone' fsck --full --no-progress"
      ;;
    node)
      echo "node '$root/bench/programs/json_zlib.js' $rounds_js"
      ;;
    gxx)
      # A compiler run: the largest translation unit of the library at -O2.
      echo "g++ -std=c++20 -O2 -I'$root/lib/include' -I'$root/lib/src' -c '$root/lib/src/validate.cpp' -o '$work/validate.o'"
      ;;
    *)
      die "no program named '$name' (known: ${selfhost_programs[*]} gxx)"
      ;;
  esac
}
