#!/usr/bin/env python
"""PostgreSQL backup and restore: ours (the CLI as a whole process, and the worker in-process)
against stock pg_dump / pg_restore and the peer django-dbbackup, on pgbench databases.

    .venv/bin/python bench/pg_backup.py [--scales 10 50] [--pairs 5] [--json] [--quick]

For each scale a fresh database ``bench_pg_<random>`` is made with ``pgbench -i -s SCALE`` on the
server at --host/--port (default 127.0.0.1:5432, user postgres, no password) and dropped at the
end. Interleaved (A B A B, --pairs times; --quick: scale 1, 2 pairs):

  backup   stock  pg_dump -Fc -f FILE
           peer   manage.py dbbackup (django-dbbackup's PgDumpBinaryConnector: pg_dump --format=custom)
           CLI    manage.py backup --components postgres                      (whole process)
           worker backups.create_backup(["postgres"]) in a process that did django.setup() once
  restore  stock  sha256sum + pg_dump -Fc (the safety backup) + createdb + pg_restore --exit-on-error
           peer   dbbackup (the same safety backup) + dbrestore into a fresh database
           ours   manage.py restore ID --components postgres --yes  (verify + safety backup + apply)

Whole programs are measured from outside (contract.run_process: wall, CPU and peak RSS from the
rusage of the tree); the worker by a driver process (this script with --driver) that times each
call itself (CPU: getrusage deltas of itself and its children; RSS: its peak). The apply phase of
our restore is read from the restore's run record (the postgres component's progress span:
roles, fresh database, pg_restore, swap, drop of the replaced one) and set against stock
createdb + pg_restore, against the same swap done with stock tools (then psql renames the copy in
and dropdb drops the replaced database) and against the peer's dbrestore alone.

The peer runs in its own virtualenv, var/bench/peer-venv (made on first use with pip install
django django-dbbackup psycopg[binary]; reused after), with a settings module written to a
temporary folder (dbbackup storage: a temporary folder; DATABASES: the bench database). Our app
gets an app database (SQLite) and BACKUP_DIR in a temporary folder and BACKUP_SOURCES naming only
the bench database.

This process stays small on purpose (no Django, no database driver: createdb, dropdb and psql do
its database work): on Linux a child's peak RSS counts its parent's pages held before exec, so
this process's own peak (~12 MiB) is the floor of every RSS figure measured from outside.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import contract

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "var" / "bench" / "peer-venv"
PEER_PACKAGES = ["django", "django-dbbackup==5.4.0", "psycopg[binary]"]
RSS_GOAL_MIB = 60e6 / 2**20  # the 60 MB

PEER_SETTINGS = """\
import os

SECRET_KEY = "bench"
USE_TZ = True
INSTALLED_APPS = ["dbbackup"]
_server = {"ENGINE": "django.db.backends.postgresql", "HOST": os.environ["BENCH_PG_HOST"],
           "PORT": os.environ["BENCH_PG_PORT"], "USER": os.environ["BENCH_PG_USER"], "PASSWORD": ""}
DATABASES = {"default": {**_server, "NAME": os.environ["BENCH_PG_DB"]},
             "restore": {**_server, "NAME": os.environ.get("BENCH_PG_RESTORE_DB", "postgres")}}
STORAGES = {"dbbackup": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                         "OPTIONS": {"location": os.environ["BENCH_PEER_STORE"]}}}
DBBACKUP_CONNECTOR_MAPPING = {"django.db.backends.postgresql": "dbbackup.db.postgresql.PgDumpBinaryConnector"}
DBBACKUP_DATABASES = ["default"]
DBBACKUP_SEND_EMAIL = False
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[10, 50], help="pgbench scale factors")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs per comparison (default 5)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    contract.add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.scales, args.pairs = [1], 2
    return args


def say(text):
    print(text, file=sys.stderr, flush=True)


def combined(samples):
    """One Sample for programs run one after the other."""
    return contract.Sample(sum(s.wall for s in samples), sum(s.cpu for s in samples),
                           max(s.rss_mib for s in samples))


def peer_python():
    """The peer's interpreter in var/bench/peer-venv, made and installed on first use."""
    python = PEER_VENV / "bin" / "python"
    check = [str(python), "-c", "import dbbackup, django, psycopg"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    say(f"installing the peer into {PEER_VENV}: pip install {' '.join(PEER_PACKAGES)}")
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True, stdout=sys.stderr)
    subprocess.run(check, check=True)
    return python


class Driver:
    """Our worker: a long-lived process (this script with --driver) that did django.setup() once;
    one JSON request a line on its stdin, one JSON answer a line on its stdout."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, __file__, "--driver"], env=env, cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, op, **fields):
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the worker driver exited (status {self.proc.wait()}) during {op}")
        answer = json.loads(line)
        if answer.get("error"):
            raise SystemExit(f"worker driver, {op}: {answer['error']}")
        return answer

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Bench:
    """One scale: the database, the three parties' environments and the measured sides."""

    def __init__(self, args, work, scale, peer):
        self.args, self.work, self.scale, self.peer = args, work, scale, peer
        suffix = uuid.uuid4().hex[:10]
        self.dbname, self.fresh, self.old = (f"bench_pg_{suffix}{end}" for end in ("", "_fresh", "_old"))
        self.conn = ["--host", args.host, "--port", str(args.port), "--username", args.user]
        self.stock_source, self.stock_out = work / "stock.dump", work / "stock-out.dump"
        self.peer_store = work / "peer-store"
        # Both Django processes run with bytecode caching on (a private PYTHONPYCACHEPREFIX, written by
        # the warm-up runs), as an installed app and the Docker image do: under PYTHONDONTWRITEBYTECODE
        # our app's ~90 modules were compiled anew by every run (~0.1 s), the peer's came compiled by pip.
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        self.peer_env = {**cached, "PYTHONPATH": str(work), "DJANGO_SETTINGS_MODULE": "peer_settings",
                         "BENCH_PG_HOST": args.host, "BENCH_PG_PORT": str(args.port), "BENCH_PG_USER": args.user,
                         "BENCH_PG_DB": self.dbname, "BENCH_PG_RESTORE_DB": self.fresh,
                         "BENCH_PEER_STORE": str(self.peer_store)}
        self.ours_env = {**cached, "DJANGO_SETTINGS_MODULE": "backupsite.settings",
                         "DATABASE_URL": f"sqlite:///{work / 'app.sqlite3'}", "VAR_DIR": str(work / "var"),
                         "BACKUP_DIR": str(work / "backups"), "BACKUP_SPOOL_DIR": str(work / "spool"),
                         "BACKUP_LOG_LEVEL": "WARNING", "BACKUP_KEEP_SAFETY": "1"}  # its record gives the phases
        self.applies = {"stock": [], "stock swap": [], "peer": [], "ours": []}

    # --- Programs ------------------------------------------------------------------------------

    def stock(self, *argv):
        return contract.run_process(list(argv))

    def createdb(self, name):
        return self.stock("createdb", *self.conn, "--template", "template0", name)

    def dropdb(self, name):
        return self.stock("dropdb", *self.conn, "--if-exists", "--force", name)

    def manage(self, *argv):
        return contract.run_process([sys.executable, str(ROOT / "manage.py"), *argv], env=self.ours_env, cwd=ROOT)

    def peer_manage(self, *argv):
        return contract.run_process([str(self.peer), "-m", "django", *argv], env=self.peer_env, cwd=self.work)

    def peer_clear(self, keep="source.psql.bin"):
        for path in self.peer_store.iterdir():
            if not path.name.startswith(keep):
                path.unlink()

    # --- Set-up ------------------------------------------------------------------------------

    def setup(self):
        say(f"building pgbench database {self.dbname} at scale {self.scale} ...")
        self.createdb(self.dbname)
        self.stock("pgbench", *self.conn, "-i", "-q", "-s", str(self.scale), self.dbname)
        (self.work / "peer_settings.py").write_text(PEER_SETTINGS)
        self.peer_store.mkdir(exist_ok=True)
        self.manage("migrate", "--verbosity", "0")
        self.driver = Driver(self.ours_env)
        self.ours_env.update(self.driver.ask("use", host=self.args.host, port=self.args.port, user=self.args.user,
                                             dbname=self.dbname)["environment"])
        # Warm-up runs, which also make what the restores restore.
        self.stock("pg_dump", *self.conn, "-Fc", "-f", str(self.stock_source), self.dbname)
        self.peer_manage("dbbackup", "--database", "default", "--output-filename", "source.psql.bin", "--noinput")
        self.source_id = self.driver.ask("backup")["backup_id"]
        self.manage("backup", "--components", "postgres")
        self.driver.ask("prune", keep=[self.source_id])

    def teardown(self):
        if getattr(self, "driver", None):
            self.driver.close()
        for name in (self.fresh, self.old, self.dbname):
            self.dropdb(name)

    # --- Backup -------------------------------------------------------------------------------

    def backup_sides(self):
        def stock():
            return self.stock("pg_dump", *self.conn, "-Fc", "-f", str(self.stock_out), self.dbname)

        def peer():
            sample = self.peer_manage("dbbackup", "--database", "default", "--output-filename", "out.psql.bin",
                                      "--noinput")
            self.peer_clear()
            return sample

        def cli():
            sample = self.manage("backup", "--components", "postgres")
            self.driver.ask("prune", keep=[self.source_id])
            return sample

        def worker():
            answer = self.driver.ask("backup")
            self.driver.ask("prune", keep=[self.source_id])
            return contract.Sample(answer["wall"], answer["cpu"], answer["rss_mib"])

        return {"stock": stock, "peer": peer, "CLI": cli, "worker": worker}

    # --- Restore ------------------------------------------------------------------------------

    def restore_sides(self):
        def stock():
            checked = self.stock("sha256sum", str(self.stock_source))
            safety = self.stock("pg_dump", *self.conn, "-Fc", "-f", str(self.stock_out), self.dbname)
            apply = combined([self.createdb(self.fresh),
                              self.stock("pg_restore", *self.conn, "--exit-on-error", "--dbname", self.fresh,
                                         str(self.stock_source))])
            # What our swap does next, with stock tools: the loaded copy replaces the database (the
            # same data), the replaced one is dropped (PostgreSQL checkpoints at once for a drop).
            swap = combined([self.stock("psql", *self.conn, "--dbname", "postgres", "--quiet", "--command",
                                        f'ALTER DATABASE "{self.dbname}" RENAME TO "{self.old}"; '
                                        f'ALTER DATABASE "{self.fresh}" RENAME TO "{self.dbname}"'),
                             self.dropdb(self.old)])
            self.applies["stock"].append(apply.wall)
            self.applies["stock swap"].append(apply.wall + swap.wall)
            return combined([checked, safety, apply])

        def peer():
            safety = self.peer_manage("dbbackup", "--database", "default", "--output-filename", "safety.psql.bin",
                                      "--noinput")
            self.peer_clear()
            self.createdb(self.fresh)  # dbrestore loads into a database that exists
            apply = self.peer_manage("dbrestore", "--database", "restore", "--input-filename", "source.psql.bin",
                                     "--noinput")
            self.dropdb(self.fresh)
            self.applies["peer"].append(apply.wall)
            return combined([safety, apply])

        def ours():
            sample = self.manage("restore", self.source_id, "--components", "postgres", "--yes")
            phases = self.driver.ask("restored")
            self.applies["ours"].append(phases["apply"])
            say(f"  our restore: verify {phases['verify']:.2f}s, safety backup {phases['safety']:.2f}s, "
                f"apply {phases['apply']:.2f}s")
            return sample

        return {"stock": stock, "peer": peer, "ours": ours}

    # --- Rows ---------------------------------------------------------------------------------

    def rows(self):
        pairs, label = self.args.pairs, f"pgbench {self.scale}"
        say(f"{label}: backups, {pairs} interleaved pairs")
        backups = contract.interleave(pairs, self.backup_sides())
        say(f"{label}: restores, {pairs} interleaved pairs")
        restores = contract.interleave(pairs, self.restore_sides())
        rows = []
        for ours in ("CLI", "worker"):
            for field, unit, limit in (("cpu", "CPU (s)", 1.10), ("wall", "wall (s)", 1.05)):
                got = contract.spreads(backups, field)
                rows.append(compared(f"PostgreSQL backup, {label}, {ours}: {unit}", got["stock"], got["peer"],
                                     got[ours], limit))
            rss = contract.spreads(backups, "rss_mib")
            rows.append(contract.row(f"PostgreSQL backup, {label}, {ours}: peak RSS (MiB)", rss[ours],
                                     stock=rss["stock"], peer=rss["peer"], goal="<= 60 MB (57.2 MiB)",
                                     met=contract.middle(rss[ours]) <= RSS_GOAL_MIB))
        whole = "verify + safety backup + apply; stock: sha256sum + pg_dump -Fc + createdb + pg_restore; " \
                "peer: dbbackup + dbrestore"
        for field, unit in (("wall", "wall (s)"), ("cpu", "CPU (s)")):
            got = contract.spreads(restores, field)
            rows.append(compared(f"PostgreSQL restore, {label}, whole ({whole}): {unit}", got["stock"], got["peer"],
                                 got["ours"], 1.05))
        applies = {side: contract.spread(walls) for side, walls in self.applies.items()}
        rows.append(compared(f"PostgreSQL restore, {label}, apply phase (from the run record; stock: createdb + "
                             "pg_restore; peer: dbrestore, whole process): wall (s)", applies["stock"],
                             applies["peer"], applies["ours"], 1.03))
        rows.append(contract.row(f"PostgreSQL restore, {label}, apply phase vs the same swap with stock tools (stock: "
                                 "createdb + pg_restore + psql renaming + dropdb of the replaced database): wall (s)",
                                 applies["ours"], stock=applies["stock swap"],
                                 ratio=contract.ratio(applies["ours"], applies["stock swap"])))
        rss = contract.spreads(restores, "rss_mib")
        rows.append(contract.row(f"PostgreSQL restore, {label}, whole: peak RSS (MiB)", rss["ours"],
                                 stock=rss["stock"], peer=rss["peer"]))
        return rows


def compared(figure, stock, peer, ours, limit):
    """A row whose goal is ``<= limit x stock, < peer``."""
    ratio = contract.ratio(ours, stock)
    return contract.row(figure, ours, stock=stock, peer=peer, ratio=ratio, goal=f"<= {limit:.2f}x stock, < peer",
                        met=ratio <= limit and contract.middle(ours) < contract.middle(peer))


def main():
    args = parse_args()
    peer = peer_python()
    rows = []
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix="pg_backup-") as tmp:
            bench = Bench(args, Path(tmp), scale, peer)
            try:
                bench.setup()
                rows += bench.rows()
            finally:
                bench.teardown()
    contract.emit(rows, args.json)


# --- The worker driver (this script with --driver) ----------------------------------------------

def driver():
    """Answer the bench's requests in one process that set Django up once (see Driver)."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import resource

    from django.conf import settings
    from django.utils.dateparse import parse_datetime

    from backups_app import components
    from backups_app.models import Backup, Restore, RunStatus
    from backups_app.services import backups

    def use(request):
        """BACKUP_SOURCES: only the bench database; answers the variables that say the same to the
        CLI. (Not through tests/stacks.py: its ENGINES imports every store's client library, which
        a worker backing up PostgreSQL does not load.)"""
        engine, options = components.engine_class("postgres"), {k: request[k] for k in ("host", "port", "user",
                                                                                            "dbname")}
        settings.BACKUP_SOURCES = {"postgres": {"ENGINE": components.engine_path(engine), "OPTIONS": options}}
        components.reset()
        return {"environment": {engine.environment[key]: str(value) for key, value in options.items()}}

    def backup(request):
        cpu, start = contract.cpu_seconds(), time.perf_counter()
        made = backups.create_backup(["postgres"])
        wall, cpu = time.perf_counter() - start, contract.cpu_seconds() - cpu
        if made.status != RunStatus.COMPLETED:
            return {"error": f"backup {made.backup_id} {made.status}: {made.error}"}
        rss = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return {"backup_id": made.backup_id, "wall": wall, "cpu": cpu, "rss_mib": rss / 1024}

    def prune(request):
        for backup_id in Backup.objects.exclude(backup_id__in=request["keep"]).values_list("backup_id", flat=True):
            backups.delete_backup(backup_id)
        return {}

    def span(start, end):
        return (parse_datetime(end) if isinstance(end, str) else end) - (
            parse_datetime(start) if isinstance(start, str) else start)

    def restored(request):
        """The phases of the latest restore, whose safety backup is then deleted."""
        restore = Restore.objects.select_related("safety_backup").latest("created_at")
        safety, applied = restore.safety_backup, restore.progress["postgres"]
        if restore.status != RunStatus.COMPLETED or safety is None:
            return {"error": f"restore {restore.restore_id} {restore.status}: {restore.error}"}
        phases = {"verify": span(restore.started_at, safety.started_at),
                  "safety": span(safety.started_at, safety.finished_at),
                  "apply": span(applied["started_at"], applied["finished_at"])}
        backups.delete_backup(safety.backup_id)
        return {name: delta.total_seconds() for name, delta in phases.items()}

    ops = {"use": use, "backup": backup, "prune": prune, "restored": restored}
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(ops[request["op"]](request)), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--driver"]:
        driver()
    else:
        main()
