#!/usr/bin/env bash
# Checks that a failure's repro line reaches GitHub (ci/lib.sh: repro, failure_note): under
# GitHub Actions an `::error` annotation with the message escaped as the runner requires (% CR LF)
# and a bullet in $GITHUB_STEP_SUMMARY; outside it, only the plain line on stderr.
# ctest repo.github_report; docs/ci.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/spanheap-github-report.XXXXXX")
trap 'rm -rf "$work"' EXIT
problems=0
expect() { # description, file, fixed string that must be a whole line of it
  grep -qxF -- "$3" "$2" || {
    echo "check_github_report: $1: no line '$3' in:" >&2
    sed 's/^/    /' "$2" >&2
    problems=$((problems + 1))
  }
}

# A stand-in ci/ script (ci/CI_SCRIPT names it after itself) that fails the way the real ones do.
cat >"$work/fake-job" <<EOF
#!/usr/bin/env bash
source "$root/ci/lib.sh"
repro "ci/repro crash-x --target alloc_free"
failure_note "failed here: 100% of
two lines"
EOF
emit() { env "$@" bash "$work/fake-job"; }

: >"$work/summary"
emit GITHUB_ACTIONS=true GITHUB_STEP_SUMMARY="$work/summary" >"$work/out" 2>"$work/err"
expect "annotation" "$work/out" "::error title=ci/fake-job::repro: ci/repro crash-x --target alloc_free"
expect "escaped annotation" "$work/out" "::error title=ci/fake-job::failed here: 100%25 of%0Atwo lines"
expect "stderr line" "$work/err" "repro: ci/repro crash-x --target alloc_free"
# shellcheck disable=SC2016  # the backquotes are Markdown
expect "summary bullet" "$work/summary" '- `ci/fake-job`: `repro: ci/repro crash-x --target alloc_free`'
# shellcheck disable=SC2016
expect "summary bullet" "$work/summary" '- `ci/fake-job`: `failed here: 100% of two lines`'

emit -u GITHUB_ACTIONS GITHUB_STEP_SUMMARY="$work/summary-local" >"$work/out-local" 2>"$work/err"
expect "stderr line outside GitHub" "$work/err" "repro: ci/repro crash-x --target alloc_free"
if [[ -s $work/out-local || -e $work/summary-local ]]; then
  echo "check_github_report: outside GitHub Actions, repro wrote annotations or a summary" >&2
  problems=$((problems + 1))
fi

((problems == 0)) || exit 1
echo "check_github_report: repro and failure_note reach the annotations and the step summary"
