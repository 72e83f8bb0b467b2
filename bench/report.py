#!/usr/bin/env python3
"""Turns one ci/bench results folder into results.md (Markdown tables) and PNG plots (gnuplot).

    bench/report.py [--parts throughput,pause,sweep] DIR
    bench/report.py --self-test

DIR holds what ci/bench wrote: throughput/<allocator>/<round>/NN.json (Google Benchmark JSON, one
file per benchmark and round, one process each; NN.log beside it), throughput/workloads.txt and
throughput/rounds.txt (the plan: which workload NN is, which rounds ran in which allocator order),
pause_scaling.csv, sweep_split.csv and machine.txt. A folder of the older layout (no rounds,
throughput/<allocator>/NN.json) reads as one round.

Within one process, the median over its repetitions. Across rounds: a ratio between two
allocators is taken within each round (the same round's processes, seconds apart), then the median
across rounds, with the min-max of the per-round ratios as its spread; the host's speed drifts
over minutes, and a ratio of two medians taken minutes apart would carry that drift. Absolute
figures (M ops/s, peak RSS, faults) are the median across rounds. A round that left no JSON (a
failed process) is named in the tables, never dropped silently.

--parts limits the report to the parts that ran (default: all three); an input of a listed part
that is missing or malformed makes the script exit non-zero, so a broken run is never reported as
a result. --self-test runs the throughput arithmetic on a made-up folder of two rounds, one of
them missing a process, and checks the figures. Writes DIR/results.md, DIR/*.dat and DIR/*.png.
See docs/performance.md.
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# Display order; spanheap first (its default reuse policy, then the quarantine policy:
# SPANHEAP_REUSE=next_cycle), then the two baselines the bars are stated against.
ALLOCATORS = ["spanheap", "spanheap-quarantine", "mimalloc", "glibc", "jemalloc", "tcmalloc"]
# The reuse policy each spanheap column must have measured (the harness writes it into the JSON
# context), so a run whose environment did not reach the heap is never reported as the other one.
REUSE = {"spanheap": "owner", "spanheap-quarantine": "next_cycle"}
# The allocator every ratio is stated against (the bars of docs/performance.md are).
BASE = "mimalloc"
PARTS = ("throughput", "pause", "sweep")


class ReportError(Exception):
    pass


def die(msg):
    raise ReportError(msg)


def workload_name(run_name):
    """'churn/real_time/threads:2' -> 'churn 2t'; 'sizes/lo:0/hi:128/real_time' -> 'sizes 0-128'."""
    parts = [p for p in run_name.split("/") if p != "real_time"]
    base, threads, lo, hi = parts[0], None, None, None
    for p in parts[1:]:
        if p.startswith("threads:"):
            threads = p.split(":")[1]
        elif p.startswith("lo:"):
            lo = int(p.split(":")[1])
        elif p.startswith("hi:"):
            hi = int(p.split(":")[1])
    if lo is not None:
        if lo >= 32768:
            return "sizes large"
        return f"sizes {lo}-{hi}"
    return f"{base} {threads}t" if threads else base


def read_process(path, alloc):
    """The per-process figures of one JSON file: {run_name: entry}, each entry the median over
    the process's repetitions."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: {e}")
    if alloc in REUSE and doc.get("context", {}).get("spanheap_reuse") != REUSE[alloc]:
        die(f"{path}: measured reuse policy {doc.get('context', {}).get('spanheap_reuse')!r}, "
            f"not {REUSE[alloc]!r}")
    runs = {}
    for b in doc.get("benchmarks", []):
        if b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            die(f"{path}: {b['name']} failed: {b.get('error_message')}")
        runs.setdefault(b["run_name"], []).append(b)
    if not runs:
        die(f"{path}: no benchmark results")
    out = {}
    for run_name, reps in runs.items():
        entry = {
            "ops": statistics.median(r["items_per_second"] for r in reps),
            "rss": statistics.median(r.get("peak_rss_mib", 0.0) for r in reps),
            "faults": statistics.median(r.get("minflt_per_kop", 0.0) for r in reps),
            "reps": len(reps),
        }
        if alloc in REUSE:
            entry["cycles"] = statistics.median(r.get("cycles", 0.0) for r in reps)
            entry["pause_max_us"] = max(r.get("pause_max_us", 0.0) for r in reps)
            entry["collections"] = max(r.get("collections", 0.0) for r in reps)
            if REUSE[alloc] == "next_cycle" and entry["collections"] != 0:
                die(f"{path}: {run_name}: {entry['collections']:.0f} owner collections under "
                    "the quarantine policy")
        out[run_name] = entry
    return out


def read_plan(root):
    """(workloads {stem: benchmark name}, rounds [round ids], order {round: [allocators]}) from
    the plan files ci/bench writes; empty when they are absent (older folders)."""
    workloads, rounds, order = {}, [], {}
    path = os.path.join(root, "workloads.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    stem, name = line.split(maxsplit=1)
                    workloads[stem] = name.strip()
    path = os.path.join(root, "rounds.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    r, *allocs = line.split()
                    rounds.append(r)
                    order[r] = allocs
    return workloads, rounds, order


def load_throughput(folder):
    """Per-round figures and the plan: {"runs": {workload: {allocator: {round: entry}}},
    "order": [workloads], "rounds": [round ids], "allocs": [allocators],
    "missing": {(workload, allocator): [(round, log path)]}}."""
    root = os.path.join(folder, "throughput")
    if not os.path.isdir(root):
        die(f"{root} is missing")
    plan_workloads, plan_rounds, plan_order = read_plan(root)
    allocs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not allocs:
        die(f"{root} holds no allocator")
    # Where each (allocator, round) keeps its files: throughput/<alloc>/<round>/, or the older
    # layout's throughput/<alloc>/ as round "1".
    dirs = {}
    for alloc in allocs:
        adir = os.path.join(root, alloc)
        subdirs = sorted((d for d in os.listdir(adir) if os.path.isdir(os.path.join(adir, d))), key=round_key)
        if subdirs:
            for r in subdirs:
                dirs[(alloc, r)] = os.path.join(adir, r)
        else:
            dirs[(alloc, "1")] = adir
    rounds = plan_rounds or sorted({r for _, r in dirs}, key=round_key)
    # The processes that should have run: every workload of the plan (else every file seen) for
    # every allocator of each round (else every allocator folder).
    stems = set(plan_workloads)
    for d in dirs.values():
        stems |= {n.rsplit(".", 1)[0] for n in os.listdir(d) if n.endswith((".json", ".log"))}
    runs, names, missing = {}, {}, {}
    for stem in sorted(stems):
        for r in rounds:
            for alloc in plan_order.get(r, allocs):
                d = dirs.get((alloc, r), os.path.join(root, alloc, r))
                path = os.path.join(d, stem + ".json")
                if not os.path.exists(path):
                    log = os.path.relpath(os.path.join(d, stem + ".log"), folder)
                    missing.setdefault((stem, alloc), []).append((r, log))
                    continue
                for run_name, entry in read_process(path, alloc).items():
                    w = workload_name(run_name)
                    names.setdefault(stem, w)
                    if names[stem] != w:
                        die(f"{path}: holds {w}, but the other files {stem}.json hold {names[stem]}")
                    runs.setdefault(w, {}).setdefault(alloc, {})[r] = entry
    for stem in stems:
        if stem not in names:
            names[stem] = workload_name(plan_workloads.get(stem, f"workload {stem}"))
    order = [names[s] for s in sorted(stems)]
    for w in order:
        runs.setdefault(w, {})
    missing = {(names[stem], alloc): v for (stem, alloc), v in missing.items()}
    return {"runs": runs, "order": order, "rounds": rounds, "missing": missing,
            "allocs": [a for a in ALLOCATORS if a in allocs] + [a for a in allocs if a not in ALLOCATORS]}


def round_key(r):
    return (0, int(r), r) if r.isdigit() else (1, 0, r)


def aggregate(per_round):
    """One allocator's figures for one workload across rounds: medians, the longest pause and
    the most owner collections of any round."""
    entries = list(per_round.values())
    agg = {key: statistics.median(e[key] for e in entries) for key in ("ops", "rss", "faults")}
    if "cycles" in entries[0]:
        agg["cycles"] = statistics.median(e["cycles"] for e in entries)
        agg["pause_max_us"] = max(e["pause_max_us"] for e in entries)
    return agg


def round_ratios(a_rounds, b_rounds, key):
    """The ratios a/b of `key` taken within each round where both ran: (median, min, max, n), or
    None when no round has both, or when some round has a zero on either side (a fault count
    against a peer with no faults in the loop has no ratio)."""
    common = [r for r in a_rounds if r in b_rounds]
    vals = [(a_rounds[r][key], b_rounds[r][key]) for r in common]
    if not vals or any(not a or not b for a, b in vals):
        return None
    ratios = [a / b for a, b in vals]
    return statistics.median(ratios), min(ratios), max(ratios), len(ratios)
def read_csv(path):
    if not os.path.exists(path):
        die(f"{path} is missing")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        die(f"{path} has no rows")
    return rows


def fmt_ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def gnuplot(script, cwd):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        die(f"gnuplot failed: {e}")


def spread(r, nr):
    """The min-max of the per-round ratios, and how many rounds they come from when some are
    missing."""
    if r is None:
        return "n/a"
    _, lo, hi, n = r
    if n == 1:
        return "one round" if nr == 1 else f"1 of {nr} rounds"
    return f"{lo:.2f}-{hi:.2f}" + (f" ({n} of {nr} rounds)" if n < nr else "")


def throughput_section(folder, out, plot=True):
    """The throughput tables (absolute figures, ratios to mimalloc with their spread across
    rounds, peak RSS, faults, spanheap's ratios) and the ratio plot."""
    t = load_throughput(folder)
    runs, order, rounds, missing, allocs = t["runs"], t["order"], t["rounds"], t["missing"], t["allocs"]
    nr = len(rounds)

    def coverage(w, a):
        n = len(runs[w].get(a, {}))
        return f", {n} of {nr} rounds" if n < nr else ""

    def table(cols, cell):
        """A workload-by-column table; cell(w, a) gives each cell."""
        out.append("| workload | " + " | ".join(cols) + " |")
        out.append("|---|" + "---:|" * len(cols))
        for w in order:
            out.append(f"| {w} | " + " | ".join(cell(w, a) for a in cols) + " |")
        out.append("")

    agg = {w: {a: aggregate(rs) for a, rs in runs[w].items()} for w in order}
    reps = sorted({e["reps"] for w in order for rs in runs[w].values() for e in rs.values()})
    reps = "/".join(map(str, reps))
    if nr == 1:
        out.append(f"## Throughput (median of {reps} repetitions)\n")
        out.append("Million ops/s (ns/op in parentheses; for 2-thread workloads, wall-clock ns per op of "
                   "the whole process). One process per allocator and workload.\n")
    else:
        out.append(f"## Throughput ({nr} rounds; each process the median of its {reps} repetitions)\n")
        out.append("Million ops/s (ns/op in parentheses; for 2-thread workloads, wall-clock ns per op of "
                   f"the whole process), the median of the {nr} rounds. One process per allocator, workload "
                   "and round; every round runs every workload for every allocator, in the order "
                   "throughput/rounds.txt lists.\n")
    def ops_cell(w, a):
        e = agg[w].get(a)
        if e:
            return f"{e['ops'] / 1e6:.2f} ({1e9 / e['ops']:.0f}){coverage(w, a)}"
        return f"no result (0 of {nr} rounds)" if (w, a) in missing else "-"

    table(allocs, ops_cell)

    peers = [a for a in allocs if a != BASE]
    if BASE in allocs:
        if nr == 1:
            out.append(f"ops/s as a ratio of {BASE}'s (higher is better; one round: no spread).\n")
        else:
            out.append(f"ops/s as a ratio of {BASE}'s (higher is better): the ratio within each round "
                       f"(against that round's {BASE} process, seconds apart), then the median of the "
                       f"{nr} rounds; in parentheses the lowest and highest per-round ratio. The host's "
                       "speed drifts over minutes: a wide spread says the ratio is not settled.\n")

        def base_ratio_cell(w, a):
            r = round_ratios(runs[w].get(a, {}), runs[w].get(BASE, {}), "ops")
            if r is None:
                return "n/a"
            return f"{r[0]:.2f}x" + (f" ({spread(r, nr)})" if nr > 1 else "")

        table(peers, base_ratio_cell)
    if missing:
        out.append("Missing processes (no JSON; the log beside it says why), left out of the medians "
                   "and of the ratios of their round:\n")
        for (w, a), lost in sorted(missing.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
            for r, log in lost:
                out.append(f"- {w}, {a}, round {r} (`{log}`)")
        out.append("")

    def per_allocator(title, key, fmt):
        out.append(title + "\n")
        table(allocs, lambda w, a: format(agg[w][a][key], fmt) + coverage(w, a) if a in agg[w] else "-")

    across = "" if nr == 1 else f" Median of the {nr} rounds."
    per_allocator("Peak RSS of the process, MiB (getrusage ru_maxrss; includes the harness's own ~5 MiB)."
                  + across, "rss", ".1f")
    per_allocator("Minor page faults of the process during the measured loop, per 1,000 ops (getrusage "
                  "ru_minflt; the workload's setup is not counted)." + across, "faults", ".3g")

    def ratio_cell(w, a, b, key):
        r = round_ratios(runs[w].get(a, {}), runs[w].get(b, {}), key)
        return "n/a" if r is None else f"{r[0]:.2f}x"

    for name in (a for a in REUSE if a in allocs):
        out.append(f"{name} as a ratio (ops/s: higher is better; RSS and faults: lower is better; a "
                   "fault ratio against a peer with no faults in the loop is n/a)"
                   + ("." if nr == 1 else ": each ratio within a round, then the median across rounds; "
                      f"the spread is the lowest and highest per-round ops/s ratio to {BASE}.")
                   + " Cycles and the longest pause are the measured loop's (the median and the highest"
                   " of the rounds; the pause is exact for a loop of at most one cycle or one that set"
                   " the process's maximum, else the power-of-two bound of its pause histogram)." + "\n")
        out.append(f"| workload | ops/s vs {BASE} | spread vs {BASE} | ops/s vs glibc | RSS vs {BASE} "
                   "| RSS vs glibc | faults/kop | faults vs mimalloc | cycles | longest pause (us) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w in order:
            s = agg[w].get(name)
            if not s:
                continue
            m = round_ratios(runs[w][name], runs[w].get(BASE, {}), "ops")
            out.append(f"| {w} | {ratio_cell(w, name, BASE, 'ops')} | {spread(m, nr)} "
                       f"| {ratio_cell(w, name, 'glibc', 'ops')} "
                       f"| {ratio_cell(w, name, BASE, 'rss')} | {ratio_cell(w, name, 'glibc', 'rss')} "
                       f"| {s['faults']:.3g} | {ratio_cell(w, name, BASE, 'faults')} "
                       f"| {s['cycles']:.0f} | {s['pause_max_us']:.1f} |")
        out.append("")
    out.append("![throughput relative to mimalloc](throughput_ratio.png)\n")

    # Each allocator: the median ratio and the lowest and highest per-round ratio (error bars).
    with open(os.path.join(folder, "throughput_ratio.dat"), "w", encoding="utf-8") as f:
        f.write("# workload, then per allocator: median, lowest and highest per-round ratio to " + BASE
                + ": " + " ".join(allocs) + "\n")
        for w in order:
            vals = []
            for a in allocs:
                r = round_ratios(runs[w].get(a, {}), runs[w].get(BASE, {}), "ops")
                vals += [f"{v:.3f}" for v in r[:3]] if r else ["NaN"] * 3
            f.write('"' + w + '" ' + " ".join(vals) + "\n")
    if not plot:
        return 0
    bars = ", ".join(f"'throughput_ratio.dat' using {3 * i + 2}:{3 * i + 3}:{3 * i + 4}:xtic(1) title '{a}'"
                     for i, a in enumerate(allocs))
    title = "median ops/s" if nr == 1 else f"median of {nr} rounds, error bars: lowest and highest round"
    gnuplot(f"""
set terminal pngcairo size 1100,560 font 'Sans,10' noenhanced
set output 'throughput_ratio.png'
set title 'Throughput relative to mimalloc ({title}; higher is better; log scale)'
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside top center horizontal
set grid ytics
set logscale y 10
set yrange [0.003:10]
set ytics ('0.003' 0.003, '0.01' 0.01, '0.03' 0.03, '0.1' 0.1, '0.3' 0.3, '1' 1, '3' 3, '10' 10)
set ylabel 'ops/s relative to mimalloc'
set xtics rotate by -25
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#444444'
plot {bars}
""", folder)
    return 1


def pause_section(folder, out):
    """The pause-scaling table, its summary lines and two plots."""
    pause = read_csv(os.path.join(folder, "pause_scaling.csv"))
    out.append("## Stop-the-world pause vs number of Ps\n")
    out.append("Options{procs=P, sweepers=0, gc_percent=0}; every size class cached in every P before "
               "each cycle. Pause from Stats::pause_last_ns; `collect` is the wall time of "
               "Heap::collect() (pause + ragged barrier); `first alloc` is the time from collect()'s "
               "return to the return of proc(i).allocate(16); `stale first alloc` is the same after "
               "testing::begin_cycle() without the barrier, so it includes that P's own lazy flush. "
               "Microseconds.\n")
    out.append("| flush | P | cycles | pause p50 | pause p99 | pause max | collect p50 | first alloc p50 "
               "| first alloc p99 | stale first alloc p50 | stale first alloc p99 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in pause:
        out.append(f"| {r['flush']} | {r['procs']} | {r['cycles']} | {float(r['pause_p50_us']):.2f} "
                   f"| {float(r['pause_p99_us']):.2f} | {float(r['pause_max_us']):.2f} "
                   f"| {float(r['collect_p50_us']):.1f} | {float(r['ttfa_collect_p50_us']):.2f} "
                   f"| {float(r['ttfa_collect_p99_us']):.2f} | {float(r['ttfa_stale_p50_us']):.2f} "
                   f"| {float(r['ttfa_stale_p99_us']):.2f} |")
    out.append("")
    by = {(r["flush"], int(r["procs"])): float(r["pause_p50_us"]) for r in pause}
    procs = sorted({int(r["procs"]) for r in pause})
    lo, hi = procs[0], procs[-1]
    if ("lazy", lo) in by and ("lazy", hi) in by:
        out.append(f"- lazy: pause p50 at {hi} Ps is {fmt_ratio(by[('lazy', hi)], by[('lazy', lo)])} "
                   f"the pause at {lo} P (bar: within 1.5x).")
    if ("eager", lo) in by and ("eager", hi) in by:
        out.append(f"- eager: pause p50 at {hi} Ps is {fmt_ratio(by[('eager', hi)], by[('eager', lo)])} "
                   f"the pause at {lo} P.")
    if ("lazy", hi) in by and ("eager", hi) in by:
        out.append(f"- eager / lazy pause p50 at {hi} Ps: {fmt_ratio(by[('eager', hi)], by[('lazy', hi)])}.")
    out.append("")
    out.append("![pause vs P](pause_vs_procs.png)\n")
    out.append("![time to first allocation vs P](ttfa_vs_procs.png)\n")

    with open(os.path.join(folder, "pause.dat"), "w", encoding="utf-8") as f:
        f.write("procs lazy_p50 lazy_p99 eager_p50 eager_p99 lazy_ttfa lazy_stale eager_ttfa eager_stale\n")
        for p in procs:
            row = {r["flush"]: r for r in pause if int(r["procs"]) == p}
            def g(flush, key):
                return row[flush][key] if flush in row else "NaN"
            f.write(f"{p} {g('lazy', 'pause_p50_us')} {g('lazy', 'pause_p99_us')} "
                    f"{g('eager', 'pause_p50_us')} {g('eager', 'pause_p99_us')} "
                    f"{g('lazy', 'ttfa_collect_p50_us')} {g('lazy', 'ttfa_stale_p50_us')} "
                    f"{g('eager', 'ttfa_collect_p50_us')} {g('eager', 'ttfa_stale_p50_us')}\n")
    gnuplot(f"""
set terminal pngcairo size 900,520 font 'Sans,10' noenhanced
set output 'pause_vs_procs.png'
set title 'Stop-the-world pause vs number of Ps (every class cached in every P)'
set logscale x 2
set logscale y 10
set xlabel 'Ps'
set ylabel 'pause (microseconds, log scale)'
set grid
set key top left
set xrange [{procs[0] * 0.8}:{procs[-1] * 1.25}]
plot 'pause.dat' using 1:2 with linespoints lw 2 pt 7 title 'lazy p50', \\
     'pause.dat' using 1:3 with linespoints dt 2 pt 6 title 'lazy p99', \\
     'pause.dat' using 1:4 with linespoints lw 2 pt 5 title 'eager p50', \\
     'pause.dat' using 1:5 with linespoints dt 2 pt 4 title 'eager p99'
""", folder)
    gnuplot(f"""
set terminal pngcairo size 900,520 font 'Sans,10' noenhanced
set output 'ttfa_vs_procs.png'
set title 'Time to first allocation after a cycle (p50)'
set logscale x 2
set logscale y 10
set xlabel 'Ps'
set ylabel 'microseconds (log scale)'
set grid
set key top left
set xrange [{procs[0] * 0.8}:{procs[-1] * 1.25}]
plot 'pause.dat' using 1:6 with linespoints lw 2 pt 7 title 'lazy, after collect()', \\
     'pause.dat' using 1:7 with linespoints lw 2 pt 6 title 'lazy, stale P (own lazy flush)', \\
     'pause.dat' using 1:8 with linespoints lw 2 pt 5 title 'eager, after collect()', \\
     'pause.dat' using 1:9 with linespoints lw 2 pt 4 title 'eager, after begin_cycle()'
""", folder)
    return 2


def sweep_section(folder, out):
    """The sweeping-split table and its plot."""
    sweep = read_csv(os.path.join(folder, "sweep_split.csv"))
    out.append("## Sweeping split\n")
    out.append(f"Default options but `sweepers`; {sweep[0]['threads']} mutator thread(s) churning a ring "
               "of 65536 objects of 8-512 B. Spans swept by each party, as a share of all spans swept; "
               "pause p50/p99 are upper bounds of their power-of-two histogram bucket.\n")
    out.append("| sweepers | Mops/s | cycles | pause mean (us) | p50 <= | p99 <= | max (us) | background "
               "| proportional | on demand | by flush | termination | peak mapped MiB |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = ["swept_background", "swept_proportional", "swept_on_demand", "swept_by_flush", "swept_termination"]
    for r in sweep:
        total = sum(int(r[k]) for k in keys) or 1
        shares = " | ".join(f"{100.0 * int(r[k]) / total:.0f}% ({int(r[k])})" for k in keys)
        out.append(f"| {r['sweepers']} | {float(r['ops_per_s']) / 1e6:.2f} | {r['cycles']} "
                   f"| {float(r['pause_mean_us']):.1f} | {r['pause_p50_le_us']} | {r['pause_p99_le_us']} "
                   f"| {float(r['pause_max_us']):.1f} | {shares} | {float(r['peak_mapped_mib']):.1f} |")
    out.append("")
    out.append("![who sweeps](sweep_split.png)\n")

    with open(os.path.join(folder, "sweep.dat"), "w", encoding="utf-8") as f:
        f.write("# label background proportional on_demand by_flush termination\n")
        for r in sweep:
            total = sum(int(r[k]) for k in keys) or 1
            label = f"{r['sweepers']} sweepers\\n{float(r['ops_per_s']) / 1e6:.2f} Mops/s"
            f.write(f'"{label}" ' + " ".join(f"{100.0 * int(r[k]) / total:.2f}" for k in keys) + "\n")
    gnuplot("""
set terminal pngcairo size 900,480 font 'Sans,10' noenhanced
set output 'sweep_split.png'
set bmargin 4
set title 'Who sweeps: share of spans swept (mutator throughput under each bar)'
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set key outside right top vertical
set yrange [0:100]
set ylabel '% of spans swept'
set grid ytics
plot 'sweep.dat' using 2:xtic(1) title 'background', '' using 3 title 'proportional', \\
     '' using 4 title 'on demand', '' using 5 title 'by flush', '' using 6 title 'termination'
""", folder)
    return 1


def write_report(folder, parts):
    machine = ""
    mpath = os.path.join(folder, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath, encoding="utf-8") as f:
            machine = f.read().strip()
    out = ["# spanheap benchmark results\n"]
    if machine:
        out.append("```\n" + machine + "\n```\n")
    missing = [p for p in PARTS if p not in parts]
    if missing:
        out.append(f"Partial run: no {' or '.join(missing)} part.\n")
    plots = 0
    if "throughput" in parts:
        plots += throughput_section(folder, out)
    if "pause" in parts:
        plots += pause_section(folder, out)
    if "sweep" in parts:
        plots += sweep_section(folder, out)
    with open(os.path.join(folder, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return plots


def fake_process(path, alloc, ops):
    """A Google Benchmark JSON file as the harness writes it: one benchmark, two repetitions
    whose median is `ops`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    name = "churn/real_time/threads:1"
    reps = [{"run_name": name, "name": name, "run_type": "iteration", "items_per_second": v,
             "peak_rss_mib": 10.0, "minflt_per_kop": 0.0, "cycles": 3.0, "pause_max_us": 1.0,
             "collections": 0.0} for v in (ops * 0.99, ops * 1.01)]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"context": {"spanheap_reuse": REUSE.get(alloc)}, "benchmarks": reps}, f)


def self_test():
    """Two rounds in which the host slows down between them: spanheap is 0.50x mimalloc in the
    first and 0.60x in the second, so the report must say 0.55x (0.50-0.60), not the 0.53x of the
    two allocators' medians across rounds; glibc's second round failed, and the tables must say
    so."""
    folder = tempfile.mkdtemp(prefix="report-self-test.")
    try:
        root = os.path.join(folder, "throughput")
        os.makedirs(root)
        with open(os.path.join(root, "workloads.txt"), "w", encoding="utf-8") as f:
            f.write("01 churn/real_time/threads:1\n")
        with open(os.path.join(root, "rounds.txt"), "w", encoding="utf-8") as f:
            f.write("# round: allocator order\n1 spanheap mimalloc glibc\n2 glibc mimalloc spanheap\n")
        fake_process(os.path.join(root, "spanheap", "1", "01.json"), "spanheap", 50e6)
        fake_process(os.path.join(root, "mimalloc", "1", "01.json"), "mimalloc", 100e6)
        fake_process(os.path.join(root, "glibc", "1", "01.json"), "glibc", 40e6)
        fake_process(os.path.join(root, "spanheap", "2", "01.json"), "spanheap", 30e6)
        fake_process(os.path.join(root, "mimalloc", "2", "01.json"), "mimalloc", 50e6)
        os.makedirs(os.path.join(root, "glibc", "2"))
        t = load_throughput(folder)
        runs = t["runs"]["churn 1t"]
        got = round_ratios(runs["spanheap"], runs["mimalloc"], "ops")
        want = (0.55, 0.5, 0.6, 2)
        if got is None or any(abs(g - w) > 1e-9 for g, w in zip(got, want)):
            return [f"self-test: spanheap/mimalloc per-round ratios {got}, want {want}"]
        lost = {("churn 1t", "glibc"): [("2", os.path.join("throughput", "glibc", "2", "01.log"))]}
        if t["missing"] != lost:
            return [f"self-test: missing rounds {t['missing']}, want glibc's round 2"]
        out = []
        throughput_section(folder, out, plot=False)
        text = "\n".join(out)
        for want_text in ("| churn 1t | 0.55x (0.50-0.60) | 0.40x (1 of 2 rounds) |",
                          "40.00 (25), 1 of 2 rounds", "- churn 1t, glibc, round 2"):
            if want_text not in text:
                return [f"self-test: the table lacks {want_text!r}:\n{text}"]
    finally:
        shutil.rmtree(folder)
    print("self-test: per-round ratios, their spread and a missing round are reported as expected")
    return []


def main():
    ap = argparse.ArgumentParser(description="Tables and plots of one ci/bench results folder.")
    ap.add_argument("folder", nargs="?", help="the results folder ci/bench wrote")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated parts to report: throughput, pause, sweep (default: all)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the throughput arithmetic on made-up data")
    args = ap.parse_args()
    try:
        if args.self_test:
            errors = self_test()
            for e in errors:
                print(e, file=sys.stderr)
            sys.exit(1 if errors else 0)
        if not args.folder:
            die("usage: bench/report.py [--parts throughput,pause,sweep] DIR")
        parts = [p for p in args.parts.split(",") if p]
        for p in parts:
            if p not in PARTS:
                die(f"--parts takes throughput, pause and sweep, not {p!r}")
        if not parts:
            die("--parts names no part")
        plots = write_report(args.folder, parts)
    except ReportError as e:
        print(f"report.py: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"report.py: wrote {os.path.join(args.folder, 'results.md')} and {plots} plot(s)")


if __name__ == "__main__":
    main()
