#!/usr/bin/env python
"""The pages that read the backup history, with 10,000 backups in it: SQL queries and server time.

    .venv/bin/python bench/history_queries.py [--backups 10000] [--requests 20] [--json] [--quick]

Creates a fresh PostgreSQL database on the shared server (127.0.0.1:5432 as postgres, dropped
after) as the app database, migrates it and bulk-creates the history: --backups backups (--quick:
500) of four configured sources with their artifacts, manifests and logs, started by 20 users or
by the schedule (no user), on three hosts; a quick verification of every 5th, a failed one (so
damaged) of every 97th, a restore rehearsal of every 50th, a restore from every 200th, and one
configured source never backed up (the worst case for "the newest backup of each source").
Then, with Django's test Client in this process and a logged-in superuser, per page: the SQL
queries of one request and the median (min-max) server time of --requests requests, after one
warm-up request. Goals (issue 14): at most 10 queries and 50 ms each.
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="history-bench-"))
DBNAME = f"bench_history_{uuid.uuid4().hex[:8]}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupsite.settings")

# The server tests/stacks.py's PG names (importing it loads the settings, so not before this).
os.environ["DATABASE_URL"] = (f"postgres://{os.environ.get('TEST_PG_USER', 'postgres')}@"
                              f"{os.environ.get('TEST_PG_HOST', '127.0.0.1')}:{os.environ.get('TEST_PG_PORT', '5432')}"
                              f"/{DBNAME}")
os.environ["BACKUP_DIR"] = str(WORK / "backups")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench import contract  # noqa: E402
from tests.stacks import ENGINES, pg_connect  # noqa: E402

SOURCES = ["postgres", "redis", "uploads", "qdrant", "media"]  # media: configured, never backed up
USERS, HOSTS, BATCH = 20, ["web-1", "worker-1", "worker-2"], 1000
MAX_QUERIES, MAX_MS = 10, 50


def fill(count):
    """``count`` backups and what hangs off them (see the module's docstring); returns the pk of a
    backup whose page has everything: artifacts, verifications, a rehearsal, a restore."""
    from django.contrib.auth.models import User

    from backups_app.models import Backup, BackupArtifact, Restore, RunCounter, RunStatus, Trigger, Verification

    users = User.objects.bulk_create(User(username=f"operator{n}", is_staff=True) for n in range(USERS))
    now, backed_up = timezone.now(), SOURCES[:-1]
    log = "\n".join(f"12:00:{n:02d} step {n}: dumped, hashed and stored the artifact" for n in range(40))
    for start in range(0, count, BATCH):
        made = Backup.objects.bulk_create(
            Backup(backup_id=f"backup_20260101_{n:06d}",
                   status=RunStatus.FAILED if n % 41 == 7 else RunStatus.COMPLETED,
                   trigger=Trigger.SCHEDULE if n % 3 == 0 else Trigger.ADMIN,
                   created_by=None if n % 3 == 0 else users[n % USERS],
                   created_at=now - timedelta(hours=n), started_at=now - timedelta(hours=n),
                   finished_at=now - timedelta(hours=n) + timedelta(minutes=3), components=backed_up,
                   size_bytes=10_000_000 + n, host=HOSTS[n % len(HOSTS)], worker=f"{HOSTS[n % len(HOSTS)]}:{n % 7}",
                   log=log, description=f"nightly {n}",
                   manifest={"components": {name: {"counts": {"rows": n, "tables": 12}} for name in backed_up},
                             "artifacts": {f"{name}.dump": {"sha256": "0" * 64, "size": n} for name in backed_up}})
            for n in range(start, min(start + BATCH, count)))
        BackupArtifact.objects.bulk_create(
            BackupArtifact(backup=backup, name=f"{name}.dump", component=name, size_bytes=2_500_000, sha256="0" * 64)
            for backup in made for name in backed_up)
        checks = []
        for n, backup in enumerate(made, start):
            at = backup.finished_at + timedelta(minutes=10)
            common = dict(backup=backup, source_backup_id=backup.backup_id, components=backed_up, started_at=at,
                          host=HOSTS[1], worker="worker-1:1", trigger=Trigger.SCHEDULE)
            if n % 5 == 0:
                checks.append(Verification(status=RunStatus.COMPLETED, created_at=at, finished_at=at, **common))
            if n % 97 == 3:
                checks.append(Verification(status=RunStatus.FAILED, created_at=at, finished_at=at, **common))
            if n % 50 == 0:
                checks.append(Verification(kind=Verification.Kind.DEEP, status=RunStatus.COMPLETED, created_at=at,
                                           finished_at=at + timedelta(minutes=5),
                                           results={name: {"ok": True, "seconds": 4.5} for name in backed_up},
                                           **common))
        Verification.objects.bulk_create(checks)
        Restore.objects.bulk_create(
            Restore(restore_id=f"restore_20260101_{n:06d}", backup=backup, source_backup_id=backup.backup_id,
                    status=RunStatus.COMPLETED, components=backed_up, created_by=users[0], host=HOSTS[0],
                    worker="web-1:1", started_at=backup.finished_at, finished_at=backup.finished_at)
            for n, backup in enumerate(made, start) if n % 200 == 0)
        print(f"  {start + len(made):,} backups", file=sys.stderr)
    RunCounter.objects.bulk_create([RunCounter(kind="backup", status=RunStatus.COMPLETED, count=count),
                                    RunCounter(kind="restore", status=RunStatus.COMPLETED, count=count // 200)])
    return Backup.objects.get(backup_id="backup_20260101_000000").pk


def quiet_503s():
    """Health answers 503 here (a source is never backed up): django.request logs each as an error."""
    logging.getLogger("django.request").setLevel(logging.CRITICAL)


def measure(client, url, requests):
    """(queries of one request, spread of the server time in ms of ``requests`` requests)."""
    client.get(url)  # warm-up: imports, template loading, the first connection
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = len(captured)  # now: the next request empties the log
    if response.status_code not in (200, 503):  # health answers 503 for the never backed-up source
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.content[:500]!r}")
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
    return queries, contract.spread(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    contract.add_arguments(parser)
    args = parser.parse_args()
    count = 500 if args.quick else args.backups
    with pg_connect("postgres") as conn:
        conn.execute(f'CREATE DATABASE "{DBNAME}"')
    try:
        # As in production: no setup_test_environment(), whose instrumented template rendering (a
        # signal and a copy of the context per template) is no part of a server's time.
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        quiet_503s()
        call_command("migrate", verbosity=0)
        (WORK / "backups").mkdir()  # the local storage health lists
        settings.BACKUP_SOURCES = {name: {"ENGINE": ENGINES["uploads"], "OPTIONS": {"path": str(WORK / name)}}
                                   for name in SOURCES}
        print(f"filling {count:,} backups", file=sys.stderr)
        detail = fill(count)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # what autovacuum has long done on a real server
        from django.contrib.auth.models import User

        client = Client()
        client.force_login(User.objects.create_superuser("boss", "", "pw"))
        pages = [("Admin history page", "/admin/backups_app/backup/"),
                 ("API backup list", "/api/system/backups"),
                 ("Admin backup page", f"/admin/backups_app/backup/{detail}/change/"),
                 ("/metrics", "/metrics"),
                 ("/api/system/health", "/api/system/health")]
        rows, size = [], "10k" if count == 10_000 else f"{count:,}"
        for name, url in pages:
            queries, ms = measure(client, url, args.requests)
            print(f"{name}: {queries} queries, {ms['median']:.1f} ms ({ms['min']:.1f}-{ms['max']:.1f})",
                  file=sys.stderr)
            rows.append(contract.row(f"{name}, {size} backups, SQL queries", queries, goal=f"<= {MAX_QUERIES}",
                                     met=queries <= MAX_QUERIES))
            rows.append(contract.row(f"{name}, {size} backups, server time (ms)", ms, goal=f"<= {MAX_MS} ms",
                                     met=ms["median"] <= MAX_MS))
    finally:
        connection.close()
        with pg_connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DBNAME}" WITH (FORCE)')
        shutil.rmtree(WORK, ignore_errors=True)
    contract.emit(rows, args.json)


if __name__ == "__main__":
    main()
