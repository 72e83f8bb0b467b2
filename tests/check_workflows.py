#!/usr/bin/env python3
"""Checks that the GitHub workflows would run on GitHub as written.

For every workflow in .github/workflows:
  - git-before-checkout: a job that runs in a container (debian:12 has no git) installs git and
    ca-certificates in a step before its first actions/checkout step; without git, checkout falls
    back to a tarball with no .git and every script that asks git fails;
  - sha-pins: every `uses:` of a remote action or reusable workflow is pinned to a full commit SHA,
    with the release it stands for in a comment (`uses: owner/repo@<40 hex> # v1.2.3`), so a moved
    tag cannot change what runs and dependabot can still bump it;
  - setup-profiles: every step that runs ci/setup names `--profile P`, and P (a literal or a
    `${{ matrix.KEY }}` resolved through every matrix row) is a profile ci/setup knows
    (`ci/setup --list-profiles`, or --profiles A,B,...);
  - docs-map: every job (its name, a matrix expression in it shown as <KEY>, a name that is only
    `${{ matrix.KEY }}` taken value by value) has a row in docs/ci.md whose first cell names it in
    backquotes and which names a `ci/` command: the command that runs the job locally;
  - soak-matrix: soak.yml's `fuzz` and `stress` jobs have one matrix row per item of that part of
    ci/soak's plan (`ci/soak --dry-run --part P`), so a new fuzz target or stress driver cannot be
    left out of the long runs.
With --extract DIR it also writes every `run:` block to DIR/<workflow>.<job>.<step>.sh as a bash
script (GitHub runs them with bash -e; `${{ ... }}` expressions become placeholders of the same
length, as actionlint does) so that ci/lint can shellcheck them.

Exits 1 and prints one line per problem; prints a summary line.
Usage: check_workflows.py [--extract DIR] [--profiles build,lint,...] [REPO_ROOT]
"""
import argparse
import os
import re
import subprocess
import sys

import yaml

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(['\"]?)([^'\"\s#]+)\1\s*(?:#\s*(.*))?$")
EXPR = re.compile(r"\$\{\{.*?\}\}")
MATRIX_REF = re.compile(r"^\$\{\{\s*matrix\.([\w-]+)\s*\}\}$")


def check_pins(wf, text, problems):
    """Remote `uses:` lines must be owner/repo@<sha> with a version comment."""
    count = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        m = USES_LINE.match(line)
        if not m:
            continue
        ref, comment = m.group(2), (m.group(3) or "").strip()
        if ref.startswith("./") or ref.startswith("docker://"):
            continue
        count += 1
        if not SHA_PIN.match(ref):
            problems.append(f"{wf}:{lineno}: '{ref}' is not pinned to a full commit SHA "
                            "(uses: owner/repo@<40 hex> # vX.Y.Z)")
        elif not re.match(r"^v?\d+(\.\d+)*\b", comment):
            problems.append(f"{wf}:{lineno}: '{ref}' lacks the release it pins in a comment (# vX.Y.Z)")
    return count


def installs_git(run):
    """True for a run block that apt-get installs both git and ca-certificates."""
    text = str(run)
    return ("apt-get" in text and re.search(r"\binstall\b", text) is not None
            and re.search(r"(?<![\w-])git(?![\w-])", text) is not None and "ca-certificates" in text)


def check_git_first(wf, job_id, job, problems):
    if not job.get("container"):
        return
    for step in job.get("steps") or []:
        uses = str(step.get("uses", ""))
        if uses.startswith("actions/checkout@"):
            problems.append(f"{wf}: jobs.{job_id}: runs in a container but checks out before a step "
                            "installs git and ca-certificates (apt-get install git ca-certificates)")
            return
        if installs_git(step.get("run", "")):
            return


def matrix_values(job, key):
    """Every value that ${{ matrix.KEY }} takes in this job (None where a row lacks it)."""
    matrix = ((job.get("strategy") or {}).get("matrix")) or {}
    if not isinstance(matrix, dict):
        return [None]
    rows = matrix.get("include") or []
    if key in matrix and isinstance(matrix[key], list):
        values = list(matrix[key])
        return values + [r[key] for r in rows if isinstance(r, dict) and key in r]
    names = matrix.get("job") or []
    by_name = {r.get("job"): r for r in rows if isinstance(r, dict)}
    if names:
        return [(by_name.get(n) or {}).get(key) for n in names]
    return [r.get(key) for r in rows if isinstance(r, dict)] or [None]


def check_profiles(wf, job_id, job, profiles, problems):
    for i, step in enumerate(job.get("steps") or []):
        run = str(step.get("run", ""))
        for line in run.splitlines():
            words = line.split()
            if not words or words[0] != "ci/setup":
                continue
            where = f"{wf}: jobs.{job_id}.steps[{i}]"
            m = re.search(r"--profile[ =](\$\{\{.*?\}\}|\S+)", line)
            if not m:
                problems.append(f"{where}: ci/setup without --profile installs everything; name "
                                f"the profile the job uses ({', '.join(sorted(profiles))})")
                continue
            value = m.group(1)
            ref = MATRIX_REF.match(value)
            values = matrix_values(job, ref.group(1)) if ref else [value]
            for v in values:
                for p in str(v).split(",") if v is not None else [None]:
                    if p not in profiles:
                        problems.append(f"{where}: setup profile '{p}' is not one of ci/setup's "
                                        f"profiles ({', '.join(sorted(profiles))})")


def job_names(job_id, job):
    """The names docs/ci.md must list for a job: its name with each `${{ matrix.KEY }}` shown as
    <KEY>, or every value of KEY when the name is nothing but that expression."""
    name = str(job.get("name", job_id))
    whole = MATRIX_REF.match(name.strip())
    if whole:
        # dict.fromkeys: include rows repeat the values of the axis they extend.
        return list(dict.fromkeys(str(v) for v in matrix_values(job, whole.group(1)) if v is not None))
    return [re.sub(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}", r"<\1>", name)]


def doc_rows(root):
    """First-cell name -> the table rows of docs/ci.md that name it there (a setup profile and a
    job may share a name)."""
    rows = {}
    with open(os.path.join(root, "docs", "ci.md"), encoding="utf-8") as f:
        for line in f:
            cells = line.strip().split("|")
            if len(cells) > 2 and not line.startswith("|---"):
                for name in re.findall(r"`([^`]+)`", cells[1]):
                    rows.setdefault(name, []).append(line)
    return rows


def check_docs_map(wf, job_id, job, rows, problems):
    for name in job_names(job_id, job):
        found = rows.get(name)
        if not found:
            problems.append(f"{wf}: job '{name}' has no row in docs/ci.md (job -> local command)")
        elif not any(re.search(r"`ci/[\w.-]+", row) for row in found):
            problems.append(f"docs/ci.md: the row of job '{name}' names no ci/ command")


def soak_plan(root, part):
    """The item names of one part of ci/soak's plan, from its dry run."""
    out = subprocess.run([os.path.join(root, "ci", "soak"), "--dry-run", "--part", part,
                          f"--{part}-seconds", "1"], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith(part + " ")]


def check_soak_matrix(root, wf, jobs, problems):
    for part in ("fuzz", "stress"):
        job = jobs.get(part)
        if not isinstance(job, dict):
            problems.append(f"{wf}: no '{part}' job (one matrix row per ci/soak {part} item)")
            continue
        want = sorted(soak_plan(root, part))
        have = sorted(str(v) for v in matrix_values(job, "target"))
        if have != want:
            problems.append(f"{wf}: jobs.{part}: matrix targets {have} but ci/soak's {part} "
                            f"items are {want}")


def extract_runs(wf, jobs, out_dir):
    written = 0
    base = os.path.splitext(wf)[0]
    for job_id, job in jobs.items():
        for i, step in enumerate(job.get("steps") or []):
            run = step.get("run")
            if run is None:
                continue
            shell = str(step.get("shell", (job.get("defaults") or {}).get("run", {}).get("shell", "bash")))
            if not shell.startswith("bash"):
                continue
            body = EXPR.sub(lambda m: "_" * len(m.group(0)), str(run))
            path = os.path.join(out_dir, f"{base}.{job_id}.{i}.sh")
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"#!/usr/bin/env bash\n# {wf}: jobs.{job_id}.steps[{i}] "
                        f"({step.get('name', 'unnamed')})\nset -e\n{body}\n")
            written += 1
    return written


def setup_profiles(root):
    out = subprocess.run([os.path.join(root, "ci", "setup"), "--list-profiles"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return set(out.split())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", metavar="DIR")
    ap.add_argument("--profiles", help="comma-separated setup profiles (default: ask ci/setup)")
    ap.add_argument("root", nargs="?",
                    default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = ap.parse_args()
    problems = []
    profiles = set(args.profiles.split(",")) if args.profiles else setup_profiles(args.root)
    wf_dir = os.path.join(args.root, ".github", "workflows")
    files = sorted(f for f in os.listdir(wf_dir) if f.endswith((".yml", ".yaml")))
    if not files:
        problems.append(".github/workflows: no workflows")
    if args.extract:
        os.makedirs(args.extract, exist_ok=True)
    pins = runs = 0
    rows = doc_rows(args.root)
    for wf in files:
        with open(os.path.join(wf_dir, wf), encoding="utf-8") as f:
            text = f.read()
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            problems.append(f"{wf}: not YAML: {e}")
            continue
        pins += check_pins(wf, text, problems)
        jobs = doc.get("jobs") or {}
        for job_id, job in jobs.items():
            check_git_first(wf, job_id, job, problems)
            check_profiles(wf, job_id, job, profiles, problems)
            check_docs_map(wf, job_id, job, rows, problems)
        if wf == "soak.yml":
            check_soak_matrix(args.root, wf, jobs, problems)
        if args.extract:
            runs += extract_runs(wf, jobs, args.extract)

    for p in problems:
        print(f"FAIL: {p}")
    extracted = f", {runs} run blocks extracted to {args.extract}" if args.extract else ""
    print(f"check_workflows: {len(files)} workflows, {pins} pinned actions{extracted}, "
          f"{len(problems)} problem(s)")
    if problems:
        print("repro: python3 tests/check_workflows.py")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
