"""The contract every bench script keeps, so that bench/run_all.py can gather them into one table.

A bench script takes ``--json`` (print the rows as a JSON list on stdout, progress on stderr only)
and ``--quick`` (small sizes, a smoke test of the script, not a measurement). A row is::

    {"figure": "PostgreSQL backup, pgbench 50, CPU (s)",   # what, with its unit
     "stock": 3.1, "peer": 3.4, "ours": 3.2,               # peer null when there is none
     "ratio": 1.03,                                          # ours / the reference the goal names
     "goal": "<= 1.10x stock, < peer",                       # the issue's target, in words
     "met": true}                                            # null when there is no goal

A value (stock, peer, ours) is a number or a spread of samples ``{"median", "min", "max"}``
(see ``spread``); ratios are of medians.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROW_KEYS = ("figure", "stock", "peer", "ours", "ratio", "goal", "met")


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/run_all.py)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")


def spread(samples):
    """The median of the samples with their min and max."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def middle(value):
    """The number a value stands for: itself, or the median of a spread."""
    return value["median"] if isinstance(value, dict) else value


def ratio(ours, reference):
    if ours is None or reference is None or not middle(reference):
        return None
    return middle(ours) / middle(reference)


def row(figure, ours, *, stock=None, peer=None, ratio=None, goal="", met=None):
    return {"figure": figure, "stock": stock, "peer": peer, "ours": ours, "ratio": ratio, "goal": goal,
            "met": None if met is None else bool(met)}


def emit(rows, as_json):
    """The rows as JSON (for run_all) or as a table for a person at a terminal."""
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        print(markdown_table(rows))


def format_value(value):
    if value is None:
        return "–"
    if isinstance(value, dict):
        return f"{_number(value['median'])} ({_number(value['min'])}–{_number(value['max'])})"
    return _number(value)


def _number(x):
    if isinstance(x, int) or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"


def markdown_table(rows):
    met = {True: "yes", False: "**no**", None: "–"}
    lines = ["| figure | stock | peer | ours | ratio | goal | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio_cell = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['figure']} | {format_value(r['stock'])} | {format_value(r['peer'])} | "
                     f"{format_value(r['ours'])} | {ratio_cell} | {r['goal'] or '–'} | {met[r['met']]} |")
    return "\n".join(lines)


class Sample:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one measured run."""

    def __init__(self, wall, cpu, rss_mib):
        self.wall, self.cpu, self.rss_mib = wall, cpu, rss_mib

    def as_dict(self):
        return {"wall": self.wall, "cpu": self.cpu, "rss_mib": self.rss_mib}


def run_process(argv, env=None, cwd=None):
    """Run a whole program and measure it from outside: wall time, and from its rusage (which
    counts the descendants it waited for) CPU and the peak RSS of the largest process of the tree.
    Output is discarded; a failure stops the bench with the program's stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed with exit {proc.returncode}: {stderr.decode(errors='replace')[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def cpu_seconds():
    """User + system CPU of this process and of its children waited for so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def interleave(pairs, sides, progress=sys.stderr):
    """Run each side once per pair, alternating (A B A B ...), and return {side: [Sample, ...]}.
    ``sides`` maps a name to a callable returning a Sample. The order inside a pair rotates so
    that no side always runs right after the same other one."""
    names = list(sides)
    samples = {name: [] for name in names}
    for n in range(pairs):
        order = names[n % len(names):] + names[:n % len(names)]
        for name in order:
            samples[name].append(sides[name]())
        print(f"pair {n + 1}/{pairs}: " + ", ".join(
            f"{name} {samples[name][-1].wall:.2f}s wall {samples[name][-1].cpu:.2f}s cpu" for name in names),
            file=progress)
    return samples


def spreads(samples, field):
    """{side: spread of that field} for the samples interleave() returned."""
    return {name: spread([getattr(s, field) for s in runs]) for name, runs in samples.items()}
