#!/usr/bin/env bash
# Fails when an input the fuzzers depend on could be lost by git: a file under fuzz/corpus/ or
# fuzz/regressions/ that .gitignore hides (git add refuses it; a fresh clone lacks it), a name
# that `ci/repro --save` or `ci/fuzz --merge` would write there and git would ignore, or a
# FuzzRegression test in fuzz/regressions/regressions_test.cpp whose input file is not tracked.
# ci/lint runs it from the repository root; docs/fuzzing.md "Corpus, dictionaries, regressions".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

problems=0
problem() {
  echo "check_inputs_tracked: $*" >&2
  problems=$((problems + 1))
}

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "check_inputs_tracked: not a git checkout; nothing to check" >&2
  exit 0
fi

# 1. Files on disk (tracked or not) that the ignore rules match.
while IFS= read -r f; do
  [[ -n $f ]] && problem "$f is ignored by $(git check-ignore -v --no-index "$f" | cut -f1)"
done < <(
  git ls-files --others --ignored --exclude-standard -- fuzz/corpus fuzz/regressions
  git ls-files --cached --ignored --exclude-standard -- fuzz/corpus fuzz/regressions
)

# 2. The names the tools write there, whether or not such a file exists yet.
for dir in fuzz/regressions/*/ fuzz/corpus/*/; do
  t=$(basename "$dir")
  for name in "crash-$t-0123456789abcdef" "crash-0123456789abcdef" "leak-0123456789abcdef" \
    "timeout-0123456789abcdef" "oom-0123456789abcdef" "0123456789abcdef" "seed-example"; do
    # -v also prints (and exits 0 for) a matching negation, so ask -q first.
    if git check-ignore -q --no-index "$dir$name"; then
      rule=$(git check-ignore -v --no-index "$dir$name")
      problem "a new $dir$name would be ignored (${rule%%$'\t'*})"
    fi
  done
done

# 3. Every regression program printed by `ci/repro --save` (TEST(FuzzRegression, <t>_<sha1:12>))
#    has its input committed as fuzz/regressions/<t>/crash-<t>-<sha1>.
tests=fuzz/regressions/regressions_test.cpp
if [[ -f $tests ]]; then
  while IFS= read -r name; do
    t=${name%_*}
    sum=${name##*_}
    if [[ -z $(git ls-files -- "fuzz/regressions/$t/crash-$t-$sum*") ]]; then
      problem "$tests: TEST(FuzzRegression, $name) has no tracked fuzz/regressions/$t/crash-$t-$sum*"
    fi
  done < <(sed -nE 's/^TEST\(FuzzRegression, ([a-z_]+_[0-9a-f]{12})\).*/\1/p' "$tests")
fi

if ((problems)); then
  echo "check_inputs_tracked: $problems problem(s); fix .gitignore or 'git add' the inputs" >&2
  exit 1
fi
echo "check_inputs_tracked: every input under fuzz/corpus and fuzz/regressions is tracked"
