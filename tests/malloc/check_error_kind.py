#!/usr/bin/env python3
"""Runs malloc_error_kinds under LD_PRELOAD of the malloc shim and checks its error contract.

    check_error_kind.py <libspanheap_malloc.so> <malloc_error_kinds> <kind> abort|report

abort:  stderr holds "spanheap: <kind>: ... (ptr=0x...)" and the process died of SIGABRT.
report: the same line once, then the program went on with a working heap and exited 0.
"""
import os
import re
import signal
import subprocess
import sys


def main() -> int:
    shim, program, kind, mode = sys.argv[1:5]
    env = dict(os.environ, LD_PRELOAD=shim, SPANHEAP_ON_ERROR=mode, SPANHEAP_CHECKS="debug")
    env.pop("SPANHEAP_ERROR_LOG", None)
    run = subprocess.run([program, kind], env=env, capture_output=True, text=True, timeout=50)
    lines = [l for l in run.stderr.splitlines() if l.startswith("spanheap: ")]
    want = re.compile(r"^spanheap: %s: .*\(ptr=0x[0-9a-f]+" % re.escape(kind))
    problems = []
    if len(lines) != 1 or not want.match(lines[0]):
        problems.append("expected exactly one 'spanheap: %s: ... (ptr=0x...)' line" % kind)
    if mode == "abort" and run.returncode != -signal.SIGABRT:
        problems.append("expected death by SIGABRT, got exit status %d" % run.returncode)
    if mode == "report" and (run.returncode != 0 or "survived" not in run.stdout):
        problems.append("expected the program to go on and exit 0, got %d" % run.returncode)
    if problems:
        print("FAIL: " + "; ".join(problems))
        print("stdout:\n" + run.stdout + "stderr:\n" + run.stderr)
        print("repro: LD_PRELOAD=%s SPANHEAP_ON_ERROR=%s %s %s" % (shim, mode, program, kind))
        return 1
    print("ok: " + lines[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
