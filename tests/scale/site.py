"""A scale-out deployment for tests, as an operator runs it: the catalog in a fresh PostgreSQL
database (created and dropped by the test), a private redis-server as the django-q2 broker, and
manage.py processes (runserver, qcluster, backup, restore) that each get their own environment,
like separate machines that share the catalog, the broker and the backup storage."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

from tests import stacks
from tests.stacks import pg_connect

ROOT = Path(__file__).resolve().parents[2]
STALE = 6  # BACKUP_STALE_SECONDS for these processes


class Site:
    def __init__(self, root, database_url, redis_url=None):
        self.root, self.storage = root, root / "backups"
        self.uploads, self.config = root / "stack" / "uploads", root / "stack" / "conf" / "app.env"
        self.config.parent.mkdir(parents=True)
        self.config.write_text("A=1\n")
        sources = {"uploads": stacks.uploads_source(self.uploads, {"doc.txt": "v1", "big.bin": os.urandom(1 << 16)}),
                   "config": (stacks.ENGINES["config"], {"paths": [str(self.config)]})}
        self.env = {**environment(root, database_url, redis_url), **stacks.environment(sources)}
        self.database_url = database_url
        self.processes = []

    def manage(self, *args, env=None, check=True, timeout=300):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        assert not check or done.returncode == 0, done.stderr[-3000:]
        return done

    def start(self, name, *args, env=None):
        """manage.py ARGS in the background, in its own process group, output in ROOT/<name>.log."""
        with open(self.root / f"{name}.log", "w") as log:
            process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})},
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def cluster(self, name, **env):
        """A qcluster named ``name`` (BACKUP_WORKER_NAME), as if on a machine of its own."""
        return self.start(name, "qcluster", env={"BACKUP_WORKER_NAME": name, **env})

    def log(self, name):
        return (self.root / f"{name}.log").read_text()

    @staticmethod
    def kill(process):
        """SIGKILL the whole process group (the cluster's sentinel, workers, pusher, monitor)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    @staticmethod
    def stopped_pids(process):
        """The processes of ``process``'s group that are stopped (SIGSTOP at a fault point)."""
        stopped = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "T" and int(fields[2]) == process.pid:  # state, pgrp
                stopped.append(int(stat.parent.name))
        return stopped

    def resume(self, process):
        for pid in self.stopped_pids(process):
            os.kill(pid, signal.SIGCONT)

    def stop_all(self):
        self.stop(*self.processes)

    @staticmethod
    def stop(*processes):
        """SIGTERM (after SIGCONT) to each process group; SIGKILL when one is still there 20 s later."""
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def query(self, sql, *params):
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def runs(self, table="backup"):
        """{run id: (status, error, worker, log)} of every backup (or restore)."""
        rows = self.query(f"SELECT {table}_id, status, error, worker, log FROM backups_app_{table}")
        return {run_id: rest for run_id, *rest in rows}

    @staticmethod
    def wait_for(condition, what, seconds=120):
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"no {what} within {seconds} s"
            time.sleep(0.3)


def environment(root, database_url, redis_url=None):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backupsite.settings", "VAR_DIR": str(root / "var"),
           "DATABASE_URL": database_url, "BACKUP_DIR": str(root / "backups"),
           "BACKUP_SPOOL_DIR": str(root / "spool"), "BACKUP_MIN_FREE_MB": "1", "BACKUP_HEARTBEAT_SECONDS": "1",
           "BACKUP_STALE_SECONDS": str(STALE), "DJANGO_SECRET_KEY": "scale-out-test-key-" + "x" * 40,
           "DJANGO_SUPERUSER_PASSWORD": "unused-in-this-test"}
    for name in ("POSTGRES_DB", "Q_REDIS_URL", "BACKUP_TEST_KILL_AT", "BACKUP_TEST_STOP_AT", "Q_CLUSTER_NAME",
                 "BACKUP_WORKER_NAME"):
        env.pop(name, None)
    if redis_url:
        env["Q_REDIS_URL"] = redis_url
    return env


def create_catalog():
    """A fresh, empty PostgreSQL database for the app's catalog; returns (name, DATABASE_URL)."""
    name = f"bk_catalog_{uuid.uuid4().hex[:12]}"
    with pg_connect("postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg = stacks.PG
    return name, f"postgres://{pg['user']}@{pg['host']}:{pg['port']}/{name}"


def drop_catalog(name):
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
