#!/usr/bin/env python
"""Our PostgreSQL backup and restore against stock pg_dump / pg_restore, on the same pgbench
database in the same run.

    .venv/bin/python bench/pg_roundtrip.py [SCALE] [--rounds N]

Builds a fresh database with ``pgbench -i -s SCALE`` (default 20, ~15 MB per scale step) on
the server at --host/--port (default 127.0.0.1:5432, user postgres, no password), then for each
round times, interleaved:

  stock backup    pg_dump -Fc -f FILE
  our backup      backups.create_backup(["postgres"])         (counts, dump, SHA-256, storage)
  stock restore   pg_restore --single-transaction --clean --if-exists
  our restore     restores.start_restore(..., confirm=True)   (verify, safety backup, apply)

and prints the best time of each step, the ratios ours/stock (target <= 1.10), the client CPU
time of each side (this process and its children; the server's share is the same work for both
and not counted; load from other jobs disturbs it much less than wall time) and the peak RSS of
this process and of the programs it runs. Our restore does more than pg_restore by design (checksum
pass and a safety backup before anything is touched), so it is also compared with the same work
done by stock tools (sha256sum + pg_dump -Fc + pg_restore) and its apply phase is shown alone.

The app runs with the project settings, a temporary app database and BACKUP_DIR, and a
BACKUP_SOURCES holding only the bench database, which is dropped at the end.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scale", nargs="?", type=int, default=20, help="pgbench scale factor (default 20)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed rounds; the best time of each step is reported (default 3)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    return parser.parse_args()


def setup_django(workdir):
    """The project settings with everything the bench writes kept under ``workdir``."""
    os.environ.update(DATABASE_URL=f"sqlite:///{workdir / 'app.sqlite3'}", VAR_DIR=str(workdir / "var"),
                      BACKUP_DIR=str(workdir / "backups"), BACKUP_SPOOL_DIR=str(workdir / "spool"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupsite.settings")
    os.environ.setdefault("BACKUP_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def use_only(dbname, args):
    from django.conf import settings

    from backups_app import components

    settings.BACKUP_KEEP_SAFETY = True  # its run record gives the restore's phase timings
    settings.BACKUP_SOURCES = {"postgres": {
        "ENGINE": "backups_app.components.postgres.PostgresComponent",
        "OPTIONS": {"host": args.host, "port": args.port, "user": args.user, "dbname": dbname}}}
    components.reset()


class ChildrenPeak:
    """Peak resident memory of this process's descendants (pg_dump, pg_restore, ...), summed
    and sampled from /proc while the block runs. getrusage's RUSAGE_CHILDREN cannot tell them
    apart: on Linux a child's ru_maxrss includes this process's pages it held before exec.
    A child that has not exec'd yet (still a copy of this Python) is skipped for the same reason."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak_kib = 0

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(self.interval):
            ours = _comm(os.getpid())
            tree = [pid for pid in _descendants(os.getpid()) if _comm(pid) != ours]
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(pid) for pid in tree))


def _descendants(pid):
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [p for child in children for p in (int(child), *_descendants(int(child)))]


def _comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return None


def _rss_kib(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)


def stock(argv):
    """Run a stock tool to completion (output discarded, errors shown)."""
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        raise SystemExit(f"{argv[0]} failed with exit {result.returncode}: {result.stderr}")


def cpu_seconds():
    """User + system CPU time of this process and its finished children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Round:
    """Wall and client CPU seconds of each step of one round."""

    def __init__(self):
        self.wall, self.cpu = {}, {}

    def measure(self, step, peak, fn):
        with peak:
            cpu, start = cpu_seconds(), time.perf_counter()
            result = fn()
            self.wall[step] = time.perf_counter() - start
            self.cpu[step] = cpu_seconds() - cpu
        return result


def span(start, end):
    return (end - start).total_seconds()


def one_round(dbname, conn, workdir, stock_peak, our_peak):
    from backups_app.models import RunStatus
    from backups_app.services import backups, restores

    stock_dump = str(workdir / "stock.dump")
    r = Round()
    r.measure("stock_backup", stock_peak, lambda: stock(["pg_dump", *conn, "-Fc", "-f", stock_dump, dbname]))
    backup = r.measure("our_backup", our_peak, lambda: backups.create_backup(["postgres"], description="bench"))
    if backup.status != RunStatus.COMPLETED:
        raise SystemExit(f"our backup failed: {backup.error}")
    r.measure("stock_sha256", stock_peak, lambda: stock(["sha256sum", stock_dump]))
    r.measure("stock_restore", stock_peak, lambda: stock(["pg_restore", *conn, "--single-transaction", "--clean",
                                                          "--if-exists", "--dbname", dbname, stock_dump]))
    restore = r.measure("our_restore", our_peak,
                        lambda: restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    if restore.status != RunStatus.COMPLETED:
        raise SystemExit(f"our restore {restore.status}: {restore.error}")
    safety = restore.safety_backup
    r.wall["our_verify"] = span(restore.started_at, safety.created_at)
    r.wall["our_safety"] = span(safety.started_at, safety.finished_at)
    r.wall["our_apply"] = span(safety.finished_at, restore.finished_at)
    sizes = {"stock": os.path.getsize(stock_dump), "ours": backup.size_bytes}
    backups.delete_backup(backup.backup_id)
    backups.delete_backup(safety.backup_id)
    return r, sizes


def report(scale, rounds, sizes, stock_peak, our_peak):
    # The best round of each step: on a shared machine noise only ever adds time.
    wall = {k: min(r.wall[k] for r in rounds) for k in rounds[0].wall}
    cpu = {k: min(r.cpu[k] for r in rounds) for k in rounds[0].cpu}
    same = ("stock_sha256", "stock_backup", "stock_restore")
    wall["stock_same_work"], cpu["stock_same_work"] = sum(wall[k] for k in same), sum(cpu[k] for k in same)

    def row(label, step, against=None, note=""):
        line = f"{label:33}{wall[step]:7.2f} s"
        if against:
            line += f"   ratio {wall[step] / wall[against]:.3f}"
        if step in cpu:
            line += f"   client CPU {cpu[step]:6.2f} s" + (f" ({cpu[step] / cpu[against]:.2f}x)" if against else "")
        return line + note

    def mib(kib):  # ru_maxrss and VmRSS are in KiB
        return f"{kib / 1024:6.1f} MiB"

    print("\n".join([
        f"pgbench scale {scale}, best of {len(rounds)} round(s); dump {sizes['stock'] / 2**20:.1f} MiB (stock), "
        f"{sizes['ours'] / 2**20:.1f} MiB (ours)",
        row("backup   stock pg_dump -Fc", "stock_backup"),
        row("         ours", "our_backup", "stock_backup"),
        row("restore  stock pg_restore", "stock_restore"),
        row("         ours", "our_restore", "stock_restore"),
        row("           verify + live counts", "our_verify"),
        row("           safety backup", "our_safety"),
        row("           apply (pg_restore)", "our_apply", "stock_restore"),
        row("         stock doing the same", "stock_same_work", None, "   (sha256sum + pg_dump -Fc + pg_restore)"),
        row("         ours vs that", "our_restore", "stock_same_work"),
        f"peak RSS this process (RUSAGE_SELF)      {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}",
        f"peak RSS children (RUSAGE_CHILDREN)      {mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)}"
        "   (counts this process's pages a child held before exec)",
        f"peak RSS of the programs run, sampled:   {mib(our_peak.peak_kib)} ours, {mib(stock_peak.peak_kib)} stock",
    ]))


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="pg_roundtrip-") as tmp:
        workdir = Path(tmp)
        setup_django(workdir)
        import psycopg

        dbname = f"bench_pg_{uuid.uuid4().hex[:10]}"
        admin = dict(host=args.host, port=args.port, user=args.user, dbname="postgres", autocommit=True)
        conn = ["--host", args.host, "--port", str(args.port), "--username", args.user]
        with psycopg.connect(**admin) as c:
            c.execute(f'CREATE DATABASE "{dbname}"')
        try:
            print(f"building pgbench database {dbname} at scale {args.scale} ...", file=sys.stderr)
            stock(["pgbench", *conn, "-i", "-q", "-s", str(args.scale), dbname])
            use_only(dbname, args)
            stock_peak, our_peak = ChildrenPeak(), ChildrenPeak()
            rounds = []
            for n in range(args.rounds):
                measured, sizes = one_round(dbname, conn, workdir, stock_peak, our_peak)
                rounds.append(measured)
                print(f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in measured.wall.items()),
                      file=sys.stderr)
            report(args.scale, rounds, sizes, stock_peak, our_peak)
        finally:
            with psycopg.connect(**admin) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
