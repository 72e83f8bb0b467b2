#!/usr/bin/env python3
"""Checks that the GitHub Actions matrix and the repository agree.

For every row of the `jobs.<id>.strategy.matrix.include` lists in .github/workflows/ci.yml:
  - `job` is one of the matrix's `job:` axis values, and every axis value has a row;
  - `script` names an executable file under ci/;
  - `preset` names a visible configure preset in CMakePresets.json that has a build, a test and
    a workflow preset of the same name;
  - a `--preset X` inside `args` agrees with `preset`.
Every `run:` step of every workflow must call a ci/ script (the workflows only call ci/, so each
CI job is reproducible by hand); the one exception is apt-get before actions/checkout, which must
install git into a bare container before there is a checkout to run ci/ from. Exits 1 and prints one line per problem; prints a summary line.

Usage: check_ci_matrix.py [REPO_ROOT]   (default: the parent of this file's folder)
"""
import json
import os
import re
import shlex
import sys

import yaml


def load_presets(root, problems):
    path = os.path.join(root, "CMakePresets.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"CMakePresets.json: cannot read: {e}")
        return {}
    kinds = {}
    for kind in ("configurePresets", "buildPresets", "testPresets", "workflowPresets"):
        kinds[kind] = {p["name"] for p in doc.get(kind, []) if not p.get("hidden")}
    return kinds


def check_preset(name, kinds, where, problems):
    if name not in kinds.get("configurePresets", set()):
        problems.append(f"{where}: preset '{name}' is not a visible configure preset in CMakePresets.json")
        return
    for kind in ("buildPresets", "testPresets", "workflowPresets"):
        if name not in kinds.get(kind, set()):
            problems.append(f"{where}: preset '{name}' has no {kind[:-7]} preset of the same name")


def check_script(root, script, where, problems):
    if not isinstance(script, str) or not script.startswith("ci/"):
        problems.append(f"{where}: script '{script}' is not a ci/ script")
        return
    path = os.path.join(root, script)
    if not os.path.isfile(path):
        problems.append(f"{where}: script '{script}' does not exist")
    elif not os.access(path, os.X_OK):
        problems.append(f"{where}: script '{script}' is not executable")


def check_run_steps(root, wf_name, jobs, problems):
    """Every run: step must start with a ci/ script that exists (or the .ci/run entry point)."""
    for job_id, job in jobs.items():
        checked_out = False
        for i, step in enumerate(job.get("steps", []) or []):
            checked_out = checked_out or str(step.get("uses", "")).startswith("actions/checkout@")
            run = step.get("run")
            if run is None:
                continue
            where = f"{wf_name}: jobs.{job_id}.steps[{i}]"
            for line in str(run).splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                first = shlex.split(line)[0]
                if first == "apt-get" and not checked_out:
                    continue
                if not (first.startswith("ci/") or first == ".ci/run"):
                    problems.append(f"{where}: runs '{first}', not a ci/ script")
                elif "${{" not in first:
                    check_script(root, first, where, problems)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    problems = []
    kinds = load_presets(root, problems)
    wf_dir = os.path.join(root, ".github", "workflows")
    ci_path = os.path.join(wf_dir, "ci.yml")
    try:
        with open(ci_path, encoding="utf-8") as f:
            ci = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        print(f"FAIL: .github/workflows/ci.yml: cannot read: {e}")
        return 1

    rows_checked = 0
    matrices = 0
    for job_id, job in (ci.get("jobs") or {}).items():
        matrix = ((job.get("strategy") or {}).get("matrix")) or {}
        if not matrix:
            continue
        matrices += 1
        axis = matrix.get("job") or []
        include = matrix.get("include") or []
        if not axis or not include:
            problems.append(f"ci.yml: jobs.{job_id}: matrix needs a 'job' axis and 'include' rows")
            continue
        seen = set()
        for row in include:
            name = row.get("job")
            where = f"ci.yml: jobs.{job_id} matrix row '{name}'"
            rows_checked += 1
            if name not in axis:
                problems.append(f"{where}: not a value of the 'job' axis {axis}")
            if name in seen:
                problems.append(f"{where}: defined twice")
            seen.add(name)
            for key in ("script", "preset"):
                if key not in row:
                    problems.append(f"{where}: lacks '{key}'")
            if "script" in row:
                check_script(root, row["script"], where, problems)
            if "preset" in row:
                check_preset(row["preset"], kinds, where, problems)
                m = re.search(r"--preset[ =](\S+)", str(row.get("args", "")))
                if m and m.group(1) != row["preset"]:
                    problems.append(f"{where}: args use preset '{m.group(1)}' but the row says '{row['preset']}'")
        for name in axis:
            if name not in seen:
                problems.append(f"ci.yml: jobs.{job_id}: axis value '{name}' has no include row")
    if matrices == 0:
        problems.append("ci.yml: no job with a matrix")

    for wf in sorted(os.listdir(wf_dir)) if os.path.isdir(wf_dir) else []:
        if not wf.endswith((".yml", ".yaml")):
            continue
        with open(os.path.join(wf_dir, wf), encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        check_run_steps(root, wf, doc.get("jobs") or {}, problems)

    for p in problems:
        print(f"FAIL: {p}")
    print(f"check_ci_matrix: {rows_checked} matrix rows, {len(problems)} problem(s)")
    if problems:
        print("repro: python3 tests/check_ci_matrix.py")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
