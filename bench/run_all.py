#!/usr/bin/env python
"""Run every bench script, gather their rows and rewrite the one results table in bench/README.md.

    .venv/bin/python bench/run_all.py                          # full sizes (takes a while; use a quiet machine)
    .venv/bin/python bench/run_all.py --quick                  # small sizes: a smoke test, only printed
    .venv/bin/python bench/run_all.py --only pg_backup.py      # run one again, keep the others' last rows

Each script in BENCHES runs in its own process as ``python bench/<name> --json [--quick]`` (the
contract is in bench/contract.py). A full-size run of a script is kept in
``bench/results/<name>.json`` with when it ran, the commit and the machine's load before and
after; the table between the markers below in bench/README.md is made from the kept runs of every
script, so each row says when and on what it was measured. A script that fails adds a row saying
so (its previous run is not kept as if it were current) and the others still run; the exit
status is then 1.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from contract import markdown_table, row

BENCH = Path(__file__).resolve().parent
README = BENCH / "README.md"
RESULTS = BENCH / "results"
START, END = "<!-- run_all: start -->", "<!-- run_all: end -->"

# The scripts that keep the contract, in the order of the table.
BENCHES = [
    "pg_backup.py",
    "redis_roundtrip.py",
    "parallel_backup.py",
    "history_queries.py",
    "verify_speed.py",
    "storage_memory.py",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, printed, never kept")
    parser.add_argument("--only", action="append", metavar="SCRIPT", choices=BENCHES,
                        help="run only this script (repeatable); the others keep their last kept run")
    parser.add_argument("--no-write", action="store_true", help="print the table, keep nothing")
    return parser.parse_args()


def commit():
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True,
                          text=True).stdout.strip()


def run_one(script, quick):
    """The script's run: {"script", "ran_at", "commit", "load_before", "load_after", "ok", "rows"}."""
    argv = [sys.executable, str(BENCH / script), "--json", *(["--quick"] if quick else [])]
    print(f"== {script}", file=sys.stderr, flush=True)
    load_before, ran_at, started_on = os.getloadavg()[0], datetime.datetime.now(datetime.UTC), commit()
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True)  # stderr: progress, straight through
    try:
        rows = json.loads(result.stdout) if result.returncode == 0 else None
    except json.JSONDecodeError:
        rows = None
    ok = rows is not None
    if not ok:
        rows = [row(f"{script}: failed (exit {result.returncode}, see its output)", None, met=False)]
    return {"script": script, "ran_at": f"{ran_at:%Y-%m-%d %H:%M} UTC", "commit": started_on,
            "load_before": load_before, "load_after": os.getloadavg()[0], "ok": ok, "rows": rows}


def kept(script):
    path = RESULTS / f"{script.removesuffix('.py')}.json"
    return json.loads(path.read_text()) if path.exists() else None


def keep(run):
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{run['script'].removesuffix('.py')}.json").write_text(json.dumps(run, indent=1) + "\n")


def table(runs, quick):
    """The README's text: where each script's rows come from, then one table of all of them."""
    mode = ("`--quick` (small sizes: a smoke test of the scripts, NOT the issue's sizes; the figures "
            "are not meaningful against the goals)" if quick else "full sizes")
    lines = [f"Made by `python bench/run_all.py` from each script's last {mode} run, on a machine with "
             f"{os.cpu_count()} CPUs. Values are medians with (min–max) of the interleaved runs; the ratio is "
             "ours over the reference the goal names. Runs (load average: 1 min, before → after):", ""]
    lines += [f"- `{run['script']}`: {run['ran_at']}, commit {run['commit']}, load {run['load_before']:.1f} → "
              f"{run['load_after']:.1f}{'' if run['ok'] else ', FAILED'}" for run in runs]
    return "\n".join([*lines, "", markdown_table([r for run in runs for r in run["rows"]])])


def write_readme(text):
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{README} has no {START} ... {END} markers")
    before, rest = readme.split(START, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{START}\n{text}\n{END}{after}")


def main():
    args = parse_args()
    fresh = {script: run_one(script, args.quick) for script in args.only or BENCHES}
    keeping = not (args.quick or args.no_write)
    if keeping:
        for run in fresh.values():
            if run["ok"]:
                keep(run)
    runs = [fresh.get(script) or (None if args.quick else kept(script)) for script in BENCHES]
    text = table([run for run in runs if run], args.quick)
    print(text)
    if keeping:
        write_readme(text)
    sys.exit(0 if all(run["ok"] for run in fresh.values()) else 1)


if __name__ == "__main__":
    main()
