#!/usr/bin/env python3
"""Whole-process wall time and peak RSS of real programs under each allocator (ci/bench part
"programs"; docs/performance.md explains the numbers).

    measure.py --out DIR --shim libspanheap_malloc.so [--reps N] --program NAME=SCRIPT ...

Every run is `/usr/bin/time bash -c SCRIPT` (wall, user + system CPU and peak RSS of the whole
process tree), with LD_PRELOAD set to the allocator's shared object
(none for glibc). Runs are interleaved (repetition, then program, then allocator), so a change in
machine load between programs does not tilt one allocator's ratios. Writes DIR/programs.csv (one
line per run), DIR/programs.md (medians and ratios to mimalloc) and DIR/programs.png (gnuplot).
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
from pathlib import Path

# The peers' shared objects as Debian installs them (libmimalloc-dev, libjemalloc-dev,
# libgoogle-perftools-dev); tcmalloc_minimal as in bench/CMakeLists.txt (no profiler hooks).
PEERS = {
    "mimalloc": "libmimalloc.so.2",
    "jemalloc": "libjemalloc.so.2",
    "tcmalloc": "libtcmalloc_minimal.so.4",
}
ORDER = ["glibc", "mimalloc", "jemalloc", "tcmalloc", "spanheap"]


def die(msg):
    print(f"measure.py: {msg}", file=sys.stderr)
    sys.exit(1)


def find_shared_object(name):
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        parts = line.strip().split(" => ")
        if len(parts) == 2 and parts[0].split(" ")[0] == name and "x86-64" in parts[0]:
            return parts[1]
    return None


def run_once(script, preload):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    r = subprocess.run(["/usr/bin/time", "-f", "@@ %e %U %S %M", "bash", "-c", script], env=env,
                       capture_output=True, text=True, timeout=900)
    marks = [l for l in r.stderr.splitlines() if l.startswith("@@ ")]
    if r.returncode != 0 or not marks:
        tail = "\n".join(r.stderr.splitlines()[-10:])
        die(f"failed (exit {r.returncode}): {script}\n{tail}\n"
            f"repro: LD_PRELOAD={preload or ''} bash -c {script!r}")
    _, wall, user, sys_, rss_kib = marks[-1].split()
    return float(wall), float(user) + float(sys_), int(rss_kib)


def plot(out, programs, allocs, ratio):
    data = out / "programs.dat"
    with data.open("w") as f:
        f.write("# program " + " ".join(allocs) + "\n")
        for p in programs:
            f.write(p + " " + " ".join(f"{ratio[p][a]:.3f}" for a in allocs) + "\n")
    columns = ", ".join(f"'programs.dat' using {i + 2}:xtic(1) title '{a}'"
                        for i, a in enumerate(allocs))
    script = f"""
set terminal pngcairo size 900,420 noenhanced
set output 'programs.png'
set title 'Real programs: wall time relative to mimalloc (LD_PRELOAD; lower is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right top
set ylabel 'wall time / mimalloc'
set yrange [0:*]
set grid ytics
set arrow from graph 0, first 1.1 to graph 1, first 1.1 nohead dashtype 2 lc rgb '#aa0000'
plot {columns}
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, cwd=out, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        die(f"gnuplot failed: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--program", action="append", default=[], metavar="NAME=SCRIPT")
    args = ap.parse_args()
    if not args.program:
        die("no --program given")
    programs = dict(p.split("=", 1) for p in args.program)
    if not Path(args.shim).is_file():
        die(f"no shim at {args.shim}")
    preload = {"glibc": None, "spanheap": str(Path(args.shim).resolve())}
    for alloc, so in PEERS.items():
        path = find_shared_object(so)
        if path:
            preload[alloc] = path
        else:
            print(f"measure.py: {so} not found; {alloc} left out", file=sys.stderr)
    allocs = [a for a in ORDER if a in preload]
    if "mimalloc" not in allocs:
        die("mimalloc is the reference and is not installed (libmimalloc-dev)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for rep in range(args.reps):
        for name, script in programs.items():
            for alloc in allocs:
                wall, cpu, rss = run_once(script, preload[alloc])
                runs.append((name, alloc, rep, wall, cpu, rss))
                print(f"  rep {rep + 1}/{args.reps} {name:7} {alloc:9} {wall:7.2f} s "
                      f"(cpu {cpu:7.2f} s) {rss / 1024:8.1f} MiB", file=sys.stderr)
    with (out / "programs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["program", "allocator", "rep", "wall_s", "cpu_s", "peak_rss_kib"])
        w.writerows(runs)
    wall = {p: {a: statistics.median(r[3] for r in runs if r[0] == p and r[1] == a)
                for a in allocs} for p in programs}
    cpu = {p: {a: statistics.median(r[4] for r in runs if r[0] == p and r[1] == a)
               for a in allocs} for p in programs}
    rss = {p: {a: statistics.median(r[5] for r in runs if r[0] == p and r[1] == a)
               for a in allocs} for p in programs}
    def over(x, ref):  # a ratio; a program too short to time (0.00 s) reads as 1
        return x / ref if ref > 0 else 1.0

    ratio = {p: {a: over(wall[p][a], wall[p]["mimalloc"]) for a in allocs} for p in programs}
    lines = ["| program | " + " | ".join(allocs) + " |", "|---" * (len(allocs) + 1) + "|"]
    for p in programs:
        cells = [f"{wall[p][a]:.2f} s ({ratio[p][a]:.2f}×), cpu {cpu[p][a]:.2f} s "
                 f"({over(cpu[p][a], cpu[p]['mimalloc']):.2f}×), {rss[p][a] / 1024:.0f} MiB "
                 f"({over(rss[p][a], rss[p]['mimalloc']):.2f}×)" for a in allocs]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Median of {args.reps} run(s): wall time, CPU time (user + system) and peak RSS, "
                 "each with its ratio to mimalloc.")
    (out / "programs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(out, list(programs), allocs, ratio)


if __name__ == "__main__":
    main()
