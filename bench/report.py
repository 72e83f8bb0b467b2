#!/usr/bin/env python3
"""Turns one ci/bench results folder into results.md (Markdown tables) and PNG plots (gnuplot).

    bench/report.py DIR

DIR holds what ci/bench wrote: throughput/<allocator>/*.json (Google Benchmark JSON, one file per
benchmark, one process each), pause_scaling.csv, sweep_split.csv and machine.txt. Medians are taken
over the repetitions of each benchmark. Writes DIR/results.md, DIR/*.dat and DIR/*.png. Exits
non-zero when an input is missing or malformed, so a broken run is never reported as a result.
See docs/performance.md.
"""

import csv
import json
import os
import statistics
import subprocess
import sys

# Display order; spanheap first (its default reuse policy, then the quarantine policy:
# SPANHEAP_REUSE=next_cycle), then the two baselines the bars are stated against.
ALLOCATORS = ["spanheap", "spanheap-quarantine", "mimalloc", "glibc", "jemalloc", "tcmalloc"]
# The reuse policy each spanheap column must have measured (the harness writes it into the JSON
# context), so a run whose environment did not reach the heap is never reported as the other one.
REUSE = {"spanheap": "owner", "spanheap-quarantine": "next_cycle"}


def die(msg):
    print(f"report.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


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


def load_throughput(folder):
    """{workload: {allocator: {"ops": median ops/s, "rss": median peak RSS MiB, "reps": n, ...}}}"""
    root = os.path.join(folder, "throughput")
    if not os.path.isdir(root):
        die(f"{root} is missing")
    table, order = {}, []
    for alloc in sorted(os.listdir(root)):
        for name in sorted(n for n in os.listdir(os.path.join(root, alloc)) if n.endswith(".json")):
            path = os.path.join(root, alloc, name)
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
            for run_name, reps in runs.items():
                w = workload_name(run_name)
                if w not in order:
                    order.append(w)
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
                table.setdefault(w, {})[alloc] = entry
    return table, order


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


def main():
    if len(sys.argv) != 2:
        die("usage: bench/report.py DIR")
    folder = sys.argv[1]
    table, order = load_throughput(folder)
    allocs = [a for a in ALLOCATORS if any(a in table[w] for w in order)]
    pause = read_csv(os.path.join(folder, "pause_scaling.csv"))
    sweep = read_csv(os.path.join(folder, "sweep_split.csv"))
    machine = ""
    mpath = os.path.join(folder, "machine.txt")
    if os.path.exists(mpath):
        with open(mpath, encoding="utf-8") as f:
            machine = f.read().strip()

    out = []
    out.append("# spanheap benchmark results\n")
    if machine:
        out.append("```\n" + machine + "\n```\n")
    reps = sorted({e["reps"] for w in order for e in table[w].values()})
    out.append(f"## Throughput (median of {'/'.join(map(str, reps))} repetitions)\n")
    out.append("Million ops/s (ns/op in parentheses; for 2-thread workloads, wall-clock ns per op of "
               "the whole process). One process per allocator and workload.\n")
    out.append("| workload | " + " | ".join(allocs) + " |")
    out.append("|---|" + "---:|" * len(allocs))
    for w in order:
        cells = []
        for a in allocs:
            e = table[w].get(a)
            cells.append(f"{e['ops'] / 1e6:.2f} ({1e9 / e['ops']:.0f})" if e else "-")
        out.append(f"| {w} | " + " | ".join(cells) + " |")
    out.append("")
    def per_allocator(title, key, fmt):
        out.append(title + "\n")
        out.append("| workload | " + " | ".join(allocs) + " |")
        out.append("|---|" + "---:|" * len(allocs))
        for w in order:
            cells = [format(table[w][a][key], fmt) if a in table[w] else "-" for a in allocs]
            out.append(f"| {w} | " + " | ".join(cells) + " |")
        out.append("")

    per_allocator("Peak RSS of the process, MiB (getrusage ru_maxrss; includes the harness's own ~5 MiB).",
                  "rss", ".1f")
    per_allocator("Minor page faults of the process during the measured loop, per 1,000 ops (getrusage "
                  "ru_minflt; the workload's setup is not counted).", "faults", ".3g")
    for name in (a for a in REUSE if a in allocs):
        out.append(f"{name} as a ratio (ops/s: higher is better; RSS and faults: lower is better; a "
                   "fault ratio against a peer with no faults in the loop is n/a).\n")
        out.append("| workload | ops/s vs mimalloc | ops/s vs glibc | RSS vs mimalloc | RSS vs glibc "
                   "| faults/kop | faults vs mimalloc | cycles | longest pause (us) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w in order:
            s = table[w].get(name)
            if not s:
                continue
            m, g = table[w].get("mimalloc", {}), table[w].get("glibc", {})
            out.append(f"| {w} | {fmt_ratio(s['ops'], m.get('ops'))} | {fmt_ratio(s['ops'], g.get('ops'))} "
                       f"| {fmt_ratio(s['rss'], m.get('rss'))} | {fmt_ratio(s['rss'], g.get('rss'))} "
                       f"| {s['faults']:.3g} | {fmt_ratio(s['faults'], m.get('faults'))} "
                       f"| {s['cycles']:.0f} | {s['pause_max_us']:.1f} |")
        out.append("")
    out.append("![throughput relative to mimalloc](throughput_ratio.png)\n")

    # Pause scaling.
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

    # Sweeping split.
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

    with open(os.path.join(folder, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")

    # Plot data and plots.
    with open(os.path.join(folder, "throughput_ratio.dat"), "w", encoding="utf-8") as f:
        f.write("# workload " + " ".join(allocs) + "\n")
        for w in order:
            m = table[w].get("mimalloc", {}).get("ops")
            vals = [f"{table[w][a]['ops'] / m:.3f}" if m and a in table[w] else "NaN" for a in allocs]
            f.write('"' + w + '" ' + " ".join(vals) + "\n")
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
    bars = ", ".join(f"'throughput_ratio.dat' using {i + 2}:xtic(1) title '{a}'" for i, a in enumerate(allocs))
    gnuplot(f"""
set terminal pngcairo size 1100,560 font 'Sans,10' noenhanced
set output 'throughput_ratio.png'
set title 'Throughput relative to mimalloc (median ops/s; higher is better; log scale)'
set style data histograms
set style histogram clustered gap 1
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
    print(f"report.py: wrote {os.path.join(folder, 'results.md')} and 4 plots")


if __name__ == "__main__":
    main()
