#!/usr/bin/env python
"""Quick verification of a backup set from the command line, whole process, against hashlib.

    .venv/bin/python bench/verify_speed.py [--size-mb 4096] [--pairs 5] [--json] [--quick]

Builds a backup set of ~4 GB (``--quick``: 256 MB) with our own CLI, ``manage.py backup``, of an
uploads folder of incompressible data (the folder is deleted once backed up), in a temporary
folder of its own: app database (SQLite), BACKUP_DIR, UPLOADS_DIR. Then interleaves (--pairs)
two whole processes reading the same files:

- stock: ``python -c`` hashing every artifact file of the set with hashlib.sha256 in 1 MiB reads;
- ours: ``manage.py verifybackup <id>`` (Django set-up, the project's system checks, the run
  records, the checksums of every artifact against the manifest).

Rows: throughput of each (set size / wall, and / CPU seconds: steadier on a busy machine; goal
>= 0.9x hashlib's), and the start-up of a
management command, ``manage.py check --tag backups`` (Django set-up and the checks a backup
command runs before it starts) against ``python -c 'import django'``. The processes run with
bytecode caching on (a private PYTHONPYCACHEPREFIX), as an installed app and the Docker image
do, after one warm-up run each. Everything is deleted at the end.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from contract import add_arguments, emit, interleave, ratio, row, run_process, spread, spreads

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
PYTHON = sys.executable
HASH_FILES = """
import hashlib, sys
for path in sys.argv[1:]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    print(digest.hexdigest(), path)
"""


def environment(work):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONDONTWRITEBYTECODE")}
    env.update(VAR_DIR=str(work / "var"), DATABASE_URL=f"sqlite:///{work / 'app.sqlite3'}",
               BACKUP_DIR=str(work / "backups"), UPLOADS_DIR=str(work / "uploads"), BACKUP_SIGNING_KEY="b" * 40,
               PYTHONPYCACHEPREFIX=str(work / "pycache"))
    return env


def manage(env, *args):
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def build_set(work, env, size_mb):
    """A backup set of ``size_mb`` of random bytes (64 MB files) made by ``manage.py backup``:
    (backup id, its artifact files)."""
    uploads = work / "uploads"
    uploads.mkdir(parents=True)
    for number in range(0, size_mb, 64):
        with open(uploads / f"part{number:05d}.bin", "wb") as f:
            for _ in range(min(64, size_mb - number)):
                f.write(os.urandom(MB))
    manage(env, "migrate", "-v0")
    backup_id = manage(env, "backup", "--components", "uploads")
    shutil.rmtree(uploads)
    uploads.mkdir()  # the source stays configured (and checked), only its data is gone
    folder = work / "backups" / backup_id
    manifest = json.loads((folder / "metadata.json").read_text())
    files = [folder / meta.get("file", name) for name, meta in sorted(manifest["artifacts"].items())]
    return backup_id, files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=4096)
    parser.add_argument("--pairs", type=int, default=5)
    add_arguments(parser)
    args = parser.parse_args()
    size_mb, pairs = (256, 2) if args.quick else (args.size_mb, args.pairs)
    work = Path(tempfile.mkdtemp(prefix="verify-bench-"))
    try:
        env = environment(work)
        print(f"building a {size_mb} MB backup set with manage.py backup in {work}", file=sys.stderr)
        backup_id, files = build_set(work, env, size_mb)
        set_mb = sum(f.stat().st_size for f in files) / MB
        print(f"{backup_id}: {len(files)} artifact(s), {set_mb:.0f} MB", file=sys.stderr)
        sides = {"hashlib": lambda: run_process([PYTHON, "-c", HASH_FILES, *map(str, files)], env=env),
                 "verifybackup": lambda: run_process([PYTHON, "manage.py", "verifybackup", backup_id], env=env,
                                                     cwd=ROOT)}
        starts = {"import django": lambda: run_process([PYTHON, "-c", "import django"], env=env),
                  "manage.py check --tag backups": lambda: run_process(
                      [PYTHON, "manage.py", "check", "--tag", "backups"], env=env, cwd=ROOT)}
        for side in (*sides.values(), *starts.values()):  # warm-up: bytecode written, page cache filled
            side()
        samples = interleave(pairs, sides)
        started = interleave(max(pairs, 5), starts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for field, unit in (("wall", "MB/s"), ("cpu", "MB per CPU second")):
        rate = {side: spread([set_mb / getattr(s, field) for s in runs]) for side, runs in samples.items()}
        speed = ratio(rate["verifybackup"], rate["hashlib"])
        rows.append(row(f"verifybackup {set_mb / 1024:.2g} GB, whole process, throughput ({unit}); stock: "
                        "hashlib.sha256 of the same files in a python process", rate["verifybackup"],
                        stock=rate["hashlib"], ratio=speed, goal=">= 0.9x hashlib", met=speed >= 0.9))
    for field in ("wall", "cpu"):
        startup = spreads(started, field)
        ours, django = startup["manage.py check --tag backups"], startup["import django"]
        rows.append(row(f"manage.py start-up, {field} (s): `check --tag backups` (set-up and the checks a backup "
                        "command runs); stock: python -c 'import django'", ours, stock=django,
                        ratio=ratio(ours, django)))
    emit(rows, args.json)


if __name__ == "__main__":
    main()
