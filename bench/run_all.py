#!/usr/bin/env python
"""Run every bench script, gather their rows and rewrite the one results table in bench/README.md.

    .venv/bin/python bench/run_all.py            # full sizes (takes a while; use a quiet machine)
    .venv/bin/python bench/run_all.py --quick    # small sizes: a smoke test, figures not meaningful
    .venv/bin/python bench/run_all.py --only pg_backup.py --no-write

Each script in BENCHES runs in its own process as ``python bench/<name> --json [--quick]`` (the
contract is in bench/contract.py). A script that fails adds a row saying so and the others still
run; the exit status is then 1. The table goes between the markers below in bench/README.md, with
the date, the commit, the mode and the machine's load average before and after.
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
START, END = "<!-- run_all: start -->", "<!-- run_all: end -->"

# The scripts that keep the contract, in the order of the table.
BENCHES = [
    "pg_backup.py",
    "redis_roundtrip.py",
    "parallel_backup.py",
    "history_queries.py",
    "verify_speed.py",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    parser.add_argument("--only", action="append", metavar="SCRIPT", help="run only this script (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave README.md alone")
    return parser.parse_args()


def run_one(script, quick):
    argv = [sys.executable, str(BENCH / script), "--json", *(["--quick"] if quick else [])]
    print(f"== {script}", file=sys.stderr, flush=True)
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True)  # stderr: progress, straight through
    try:
        rows = json.loads(result.stdout) if result.returncode == 0 else None
    except json.JSONDecodeError:
        rows = None
    if rows is None:
        return [row(f"{script}: failed (exit {result.returncode}, see its output)", None, met=False)], False
    return rows, True


def header(quick, load_before):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True,
                            text=True).stdout.strip()
    load_after = os.getloadavg()
    mode = ("`--quick` (small sizes: a smoke test of the scripts, NOT the issue's sizes; the figures "
            "are not meaningful against the goals)" if quick else "full sizes")
    return (f"Produced by `python bench/run_all.py{' --quick' if quick else ''}` on "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {mode}; "
            f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and {load_after[0]:.1f} after "
            "(1 min). Values are medians with (min–max) of the interleaved runs; the ratio is ours over "
            "the reference the goal names.")


def write_readme(text):
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{README} has no {START} ... {END} markers")
    before, rest = readme.split(START, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{START}\n{text}\n{END}{after}")


def main():
    args = parse_args()
    load_before = os.getloadavg()
    rows, all_ok = [], True
    for script in args.only or BENCHES:
        script_rows, ok = run_one(script, args.quick)
        rows += script_rows
        all_ok &= ok
    text = f"{header(args.quick, load_before)}\n\n{markdown_table(rows)}"
    print(text)
    if not args.no_write:
        write_readme(text)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
