#!/usr/bin/env bash
# Replays every input under the given files/directories through a fuzz binary that takes one
# input file per run (the AFL++ build: libAFLDriver runs the file named on its command line).
# Usage: replay_each.sh BINARY FILE|DIR...
set -euo pipefail
bin=$1
shift
n=0
for arg in "$@"; do
  if [[ -d $arg ]]; then
    files=("$arg"/*)
  else
    files=("$arg")
  fi
  for f in "${files[@]}"; do
    [[ -f $f ]] || continue
    case $(basename "$f") in README* | .*) continue ;; esac
    if ! "$bin" "$f" </dev/null >/dev/null 2>"${TMPDIR:-/tmp}/replay_each.$$"; then
      cat "${TMPDIR:-/tmp}/replay_each.$$" >&2
      rm -f "${TMPDIR:-/tmp}/replay_each.$$"
      echo "replay failed: $bin $f" >&2
      echo "repro: ci/repro $f" >&2
      exit 1
    fi
    n=$((n + 1))
  done
done
rm -f "${TMPDIR:-/tmp}/replay_each.$$"
echo "replayed $n input(s) through $(basename "$bin"), every check passed"
