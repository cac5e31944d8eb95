"""Runs under faults, with real processes: manage.py backups, restores and deletions are killed
(SIGKILL) or paused (SIGSTOP) at exact lines through the test hook (backups_app/faults.py), then
the sweep (manage.py sweepruns) and a second worker run. After each: no lock held, no run pending
or in progress past its bound, every completed backup verifies with the stock sha256sum, no
pinned backup deleted, the uploads folder in exactly one state (before or after) with no leftovers.
The app database is a SQLite file all the processes share."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests import stacks

ROOT = Path(__file__).resolve().parents[2]
STALE = PENDING = 6  # BACKUP_STALE_SECONDS, BACKUP_PENDING_SECONDS for these processes
ACTIVE = ("pending", "in_progress", "deleting")


class Site:
    """One deployment: its app database, backup storage, spool and uploads folder, and the
    environment every process of it gets."""

    def __init__(self, root, template_db):
        self.root, self.db, self.storage = root, root / "app.sqlite3", root / "backups"
        self.uploads, self.config = root / "stack" / "uploads", root / "stack" / "conf" / "app.env"
        self.db.write_bytes(template_db.read_bytes())
        self.config.parent.mkdir(parents=True)
        self.config.write_text("A=1\n")
        self.env = {**environment(root), **stacks.environment({
            "uploads": stacks.uploads_source(self.uploads, {"doc.txt": "v1"}),
            "config": (stacks.ENGINES["config"], {"paths": [str(self.config)]})})}

    def run(self, *args, kill_at=None):
        """manage.py ARGS to its end (killed at ``kill_at`` when given)."""
        env = {**self.env, **({"BACKUP_TEST_KILL_AT": kill_at} if kill_at else {})}
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)

    def ok(self, *args):
        done = self.run(*args)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip()

    def stopped_at(self, point, *args):
        """manage.py ARGS, started and left paused (SIGSTOP) at ``point``."""
        proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, "BACKUP_TEST_STOP_AT": point})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
                return proc
            time.sleep(0.1)
        proc.kill()
        raise AssertionError(f"never stopped at {point}: {proc.communicate()[1][-3000:]}")

    def cluster(self, name, kill_at=None):
        """A qcluster (its log in ROOT/<name>.log), killing its worker at ``kill_at`` when given."""
        env = {**self.env, **({"BACKUP_TEST_KILL_AT": kill_at} if kill_at else {})}
        with open(self.root / f"{name}.log", "w") as log:
            return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)

    def cluster_log(self, name):
        return (self.root / f"{name}.log").read_text()

    @staticmethod
    def stop(cluster):
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait(timeout=30)

    @staticmethod
    def wait_for(condition, what, seconds=90):
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"no {what} within {seconds} s"
            time.sleep(0.3)

    def query(self, sql, *params):
        with closing(sqlite3.connect(self.db, timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()

    def backup(self, key, value):
        """(status, error, pinned) of the backup whose ``key`` is ``value``."""
        (row,) = self.query(f"SELECT status, error, pinned FROM backups_app_backup WHERE {key} = ?", value)
        return row

    def write_uploads(self, text):
        (self.uploads / "doc.txt").write_text(text)

    def uploads_state(self):
        return {p.name: p.read_text() for p in self.uploads.iterdir()}

    def sweep_after(self, seconds):
        time.sleep(seconds + 0.5)
        return self.ok("sweepruns")

    def check(self):
        """The invariants that must hold whatever was killed, once the sweep ran."""
        assert self.query("SELECT name, holder FROM backups_app_operationlock") == []
        for table in ("backup", "restore", "verification"):
            assert self.query(f"SELECT id, status FROM backups_app_{table} WHERE status IN (?, ?, ?)", *ACTIVE) == []
        for (backup_id,) in self.query("SELECT backup_id FROM backups_app_backup WHERE status = ?", "completed"):
            folder = self.storage / backup_id
            assert (folder / "metadata.json").is_file(), backup_id
            assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder).returncode == 0
        assert self.query("SELECT backup_id FROM backups_app_backup WHERE pinned AND status != ?", "completed") == []
        assert self.uploads.is_dir() and self.config.is_file()
        assert list((self.root / "stack").rglob(".*")) == []  # no .uploads.restore-/old-, .app.env.restore-
        assert list((self.root / "spool").glob("*.swap.json")) == []
        for failed_id, in self.query("SELECT backup_id FROM backups_app_backup WHERE status = ?", "failed"):
            assert not (self.storage / failed_id).exists()


def environment(root):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backupsite.settings", "VAR_DIR": str(root / "var"),
           "DATABASE_URL": f"sqlite:///{root / 'app.sqlite3'}", "BACKUP_DIR": str(root / "backups"),
           "BACKUP_SPOOL_DIR": str(root / "spool"), "BACKUP_MIN_FREE_MB": "1", "BACKUP_HEARTBEAT_SECONDS": "1",
           "BACKUP_STALE_SECONDS": str(STALE), "BACKUP_PENDING_SECONDS": str(PENDING)}
    for name in ("POSTGRES_DB", "DJANGO_SECRET_KEY", "Q_REDIS_URL", "BACKUP_TEST_KILL_AT", "BACKUP_TEST_STOP_AT"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("template")
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                          env=environment(root), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return root / "app.sqlite3"


@pytest.fixture
def site(tmp_path, template_db):
    return Site(tmp_path, template_db)


@pytest.mark.parametrize("point, status", [
    ("backup.claim", "pending"), ("backup.before_manifest", "in_progress"), ("backup.finish", "in_progress")])
def test_a_backup_killed_is_failed_by_the_sweep_and_leaves_no_files(site, point, status):
    done = site.run("backup", kill_at=point)
    assert done.returncode == -signal.SIGKILL
    ((backup_id, found),) = site.query("SELECT backup_id, status FROM backups_app_backup")
    assert found == status
    if point == "backup.finish":  # everything was written: only the end was missing
        assert (site.storage / backup_id / "metadata.json").is_file()
    assert site.ok("sweepruns") == "0 stale run(s) marked failed"  # not past its bound yet
    assert site.sweep_after(max(STALE, PENDING)) == "1 stale run(s) marked failed"

    state, error, _ = site.backup("backup_id", backup_id)
    assert state == "failed"
    assert error.startswith("No worker started this backup within BACKUP_PENDING_SECONDS" if status == "pending"
                            else "The worker running this stopped responding")
    site.check()
    again = site.ok("backup")  # a second worker: nothing is left in its way
    assert site.backup("backup_id", again)[0] == "completed"
    site.check()


@pytest.mark.parametrize("point, status, after", [
    ("restore.locked", "failed", False),  # the row and its lock exist, no worker started it
    ("swap.extracted", "rolled_back", False),  # the new folder is extracted beside the live one
    ("swap.moved_aside", "rolled_back", False),  # between the two renames: the live folder is missing
    ("restore.applied", "completed", True),  # restored, the safety backup not deleted yet
    ("restore.finish", "completed", True),  # done and the safety backup deleted, not marked yet
])
def test_a_restore_killed_frees_its_lock_and_leaves_the_store_in_one_state(site, point, status, after):
    backup_id = site.ok("backup")
    site.write_uploads("v2")
    done = site.run("restore", backup_id, "--yes", kill_at=point)
    assert done.returncode == -signal.SIGKILL
    assert site.query("SELECT name FROM backups_app_operationlock") == [("restore",)]
    refused = site.run("backup")
    assert refused.returncode == 1 and "Backup refused: restore_" in refused.stderr

    assert site.sweep_after(max(STALE, PENDING)) == "1 stale run(s) marked failed"
    ((found, error, log, safety_id),) = site.query("SELECT status, error, log, safety_backup_id FROM "
                                                   "backups_app_restore")
    assert found == status, error
    assert site.uploads_state() == {"doc.txt": "v1" if after else "v2"}
    if point == "swap.moved_aside":
        assert "was moved aside by a restore that was killed and is put back as it was before" in log
    if status == "rolled_back":
        assert "rolling back uploads from" in log and "The previous data was put back from safety backup" in error
    if status == "completed":  # it was restored: only the end was missing, and the safety backup goes
        assert "every component was restored before the worker died" in log and safety_id is None
    site.check()

    site.write_uploads("v3")
    site.ok("restore", backup_id, "--yes")  # a second worker: the lock did not leak
    assert site.uploads_state() == {"doc.txt": "v1"}
    site.check()


def test_a_config_restore_killed_mid_file_leaves_the_file_whole_and_no_temporary_file(site):
    backup_id = site.ok("backup")
    site.config.write_text("A=2\n")
    done = site.run("restore", backup_id, "--components", "config", "--set", "config.mode=apply", "--yes",
                    kill_at="config.file_written")
    assert done.returncode == -signal.SIGKILL
    assert [p.name[:17] for p in site.config.parent.iterdir() if p.name.startswith(".")] == [".app.env.restore-"]
    assert site.sweep_after(STALE) == "1 stale run(s) marked failed"
    assert site.config.read_text() == "A=2\n"
    site.check()


def test_a_deletion_killed_between_files_and_row_is_never_offered_and_is_finished(site):
    backup_id = site.ok("backup")
    done = site.run("shell", "-c", f"from backups_app.services.backups import delete_backup; "
                                   f"delete_backup('{backup_id}')", kill_at="delete.files_removed")
    assert done.returncode == -signal.SIGKILL
    assert site.backup("backup_id", backup_id)[0] == "deleting"
    assert not (site.storage / backup_id).exists()
    for source in (backup_id, "latest"):  # neither by its id nor as the latest
        refused = site.run("restore", source, "--yes")
        assert refused.returncode == 1
        assert ("is deleting, not completed" if source == backup_id else "no completed backup") in refused.stderr

    assert site.ok("sweepruns") == "1 stale run(s) marked failed"
    assert site.query("SELECT backup_id FROM backups_app_backup") == []
    site.check()


def test_a_worker_paused_below_the_stale_limit_is_left_alone(site):
    proc = site.stopped_at("backup.before_manifest", "backup")
    assert site.ok("sweepruns") == "0 stale run(s) marked failed"
    proc.send_signal(signal.SIGCONT)
    backup_id = proc.communicate(timeout=60)[0].strip()
    assert proc.returncode == 0 and site.backup("backup_id", backup_id)[0] == "completed"
    site.check()


def test_a_backup_paused_past_the_stale_limit_cannot_complete_after_the_sweep(site):
    proc = site.stopped_at("backup.before_manifest", "backup")
    ((backup_id,),) = site.query("SELECT backup_id FROM backups_app_backup")
    assert site.sweep_after(STALE) == "1 stale run(s) marked failed"
    assert not (site.storage / backup_id).exists()

    proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"{backup_id} was taken over" in err
    status, error, _ = site.backup("backup_id", backup_id)
    assert status == "failed" and error.startswith("The worker running this stopped responding")
    assert not (site.storage / backup_id).exists()  # it wrote no manifest and removed nothing
    site.check()


@pytest.mark.parametrize("point, status", [("restore.applied", "completed"), ("swap.extracted", "rolled_back")])
def test_a_restore_paused_past_the_stale_limit_cannot_overwrite_the_sweep_or_the_next_restore(site, point, status):
    first = site.ok("backup")
    site.write_uploads("v2")
    second = site.ok("backup")
    site.write_uploads("v3")
    proc = site.stopped_at(point, "restore", first, "--yes")
    assert site.sweep_after(STALE) == "1 stale run(s) marked failed"  # healed: finished, or rolled back
    ((paused_id, found),) = site.query("SELECT restore_id, status FROM backups_app_restore")
    assert found == status
    assert site.uploads_state() == {"doc.txt": "v1" if status == "completed" else "v3"}

    site.ok("restore", second, "--yes")  # the lock was freed: the next restore runs
    assert site.uploads_state() == {"doc.txt": "v2"}
    proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"{paused_id} was taken over" in err
    assert site.query("SELECT status FROM backups_app_restore WHERE restore_id = ?", paused_id) == [(status,)]
    assert site.uploads_state() == {"doc.txt": "v2"}  # the second restore's result stands
    site.check()


def test_a_queued_backup_whose_worker_died_is_swept_and_its_task_coming_back_does_nothing(site):
    site.env.update(Q_WORKERS="1", Q_TIMEOUT="4", Q_RETRY="8")  # handed out again 8 s after it was taken
    first_cluster = site.cluster("first", kill_at="backup.before_manifest")
    try:
        backup_id = site.ok("backup", "--async")
        site.wait_for(lambda: "reincarnated worker" in site.cluster_log("first"), "dead worker replaced")
    finally:
        site.stop(first_cluster)
    assert site.backup("backup_id", backup_id)[0] == "in_progress"
    assert site.sweep_after(STALE) == "1 stale run(s) marked failed"

    second_cluster = site.cluster("second")
    try:
        next_id = site.ok("backup", "--async")
        site.wait_for(lambda: site.backup("backup_id", next_id)[0] == "completed", "second backup completed")
        site.wait_for(lambda: f"{backup_id} is failed, not pending: nothing to do" in site.cluster_log("second"),
                      "task of the swept backup handed out again")
    finally:
        site.stop(second_cluster)
    status, error, _ = site.backup("backup_id", backup_id)
    assert status == "failed" and error.startswith("The worker running this stopped responding")
    assert site.query("SELECT count(*) FROM django_q_ormq") == [(0,)]  # acknowledged: it will not come back
    site.check()


# --- A restore killed at many points, then healed by the sweep -----------------------------------

BIG = 2_500_000  # bytes of random data per store: its artifact is read in several chunks, so a kill
# at the middle of reading it ("read.<artifact>.half") is a kill in the middle of loading it


class StoresSite(Site):
    """A Site that also holds PostgreSQL, Redis, SQLite and an S3 bucket (config restored in apply
    mode): each store a few MB of random data and a marker that says which version it holds."""

    def __init__(self, root, template_db, dbname, redis_url, s3_endpoint, bucket):
        super().__init__(root, template_db)
        from tests.conftest import s3_client

        self.dbname, self.redis_url, self.bucket = dbname, redis_url, bucket
        self.side_databases = set()
        self.sqlite, self.s3 = root / "stack" / "app.sqlite3", s3_client(s3_endpoint)
        rows = [(i, os.urandom(BIG // 1000)) for i in range(1, 1001)]
        with stacks.pg_connect(dbname) as conn:
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body bytea)")
            conn.cursor().executemany("INSERT INTO docs VALUES (%s, %s)", rows)
        with closing(sqlite3.connect(self.sqlite)) as conn, conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
            conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
        with self.redis() as client:
            client.mset({f"k{i}": body for i, body in rows})
        (self.uploads / "big.bin").write_bytes(os.urandom(BIG))
        self.s3.put_object(Bucket=bucket, Key="big.bin", Body=os.urandom(BIG))
        self.mark("v0")
        self.env.update(stacks.environment({
            "postgres": (stacks.ENGINES["postgres"], stacks.pg_options(dbname)),
            "redis": (stacks.ENGINES["redis"], {"url": redis_url}),
            "sqlite": (stacks.ENGINES["sqlite"], {"paths": [str(self.sqlite)]}),
            "objects": (stacks.ENGINES["objects"], {"endpoint_url": s3_endpoint, "buckets": bucket,
                                                    "region": "us-east-1", "access_key_id": "testing-key",
                                                    "secret_access_key": "testing-secret"})}))

    def redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url)

    def mark(self, version):
        """Write ``version`` into every store."""
        with stacks.pg_connect(self.dbname) as conn:
            conn.execute("UPDATE docs SET body = %s WHERE id = 1", [version.encode()])
        with closing(sqlite3.connect(self.sqlite)) as conn, conn:
            conn.execute("UPDATE t SET body = ? WHERE id = 1", [version])
        with self.redis() as client:
            client.set("marker", version)
        self.write_uploads(version)
        self.s3.put_object(Bucket=self.bucket, Key="marker", Body=version.encode())
        self.config.write_text(f"A={version}\n")

    def states(self):
        """{store: a digest of all it holds}; leftovers of a restore (spare Redis dbs, side
        databases) are asserted away here."""
        with stacks.pg_connect(self.dbname) as conn:
            postgres = conn.execute("SELECT md5(string_agg(id || ':' || md5(body), ',' ORDER BY id)) FROM docs")
            postgres = postgres.fetchone()[0]
        with stacks.pg_connect("postgres") as conn:
            # A load killed midway leaves its fresh database (the plan names it, to drop by hand).
            side = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                [f"{self.dbname}__"]).fetchall()
        assert all(name.startswith(f"{self.dbname}__restoring_") for name, in side), side
        self.side_databases.update(name for name, in side)
        with closing(sqlite3.connect(f"file:{self.sqlite}?mode=ro", uri=True)) as conn:
            sqlite = hash(tuple(conn.execute("SELECT id, body FROM t ORDER BY id")))
        with self.redis() as client:
            assert list(client.info("keyspace")) == ["db0"]  # no spare db left
            keys = sorted(client.keys())
            redis_state = hash(tuple(zip(keys, client.mget(keys))))
        objects = [(o["Key"], self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read())
                   for o in self.s3.list_objects_v2(Bucket=self.bucket)["Contents"]]
        return {"postgres": postgres, "sqlite": sqlite, "redis": redis_state, "config": self.config.read_text(),
                "uploads": hash(tuple(sorted((p.name, p.read_bytes()) for p in self.uploads.iterdir()))),
                "objects": hash(tuple(sorted(objects)))}

    def artifacts(self, backup_id):
        """{component: its (largest) artifact} of backup ``backup_id``."""
        ((manifest,),) = self.query("SELECT manifest FROM backups_app_backup WHERE backup_id = ?", backup_id)
        found = {}
        for name, meta in sorted(json.loads(manifest)["artifacts"].items(), key=lambda item: item[1]["size"]):
            found[meta["component"]] = name
        return found


def one_state(states, before, backup):
    """'before' or 'backup' when every store holds that one state; None otherwise."""
    for label, expected in (("before", before), ("backup", backup)):
        if states == expected:
            return label
    return None


@pytest.fixture
def stores_site(tmp_path, template_db, pg_database, redis_url, moto_endpoint):
    from tests.conftest import new_bucket

    return StoresSite(tmp_path, template_db, pg_database, redis_url, moto_endpoint, new_bucket(moto_endpoint))


def test_a_restore_killed_anywhere_is_healed_into_one_state_and_a_new_restore_works(stores_site, capsys):
    site = stores_site
    backup_id = site.ok("backup")
    backup = site.states()
    art = site.artifacts(backup_id)
    assert sorted(art) == ["config", "objects", "postgres", "redis", "sqlite", "uploads"]
    mid_load = {name: f"read.{art[name]}.half#2" for name in ("postgres", "redis", "sqlite", "uploads", "objects")}
    # (where the restore is killed, where the first sweep's heal is killed or None, the outcome)
    cases = [
        ("backup.before_manifest", None, "failed"),  # in the safety backup: nothing touched yet
        *[(point, None, "rolled_back") for point in mid_load.values()],
        ("config.file_written", None, "rolled_back"),
        ("swap.moved_aside", None, "rolled_back"),  # uploads between its two renames
        ("restore.applied", None, "completed"),  # every store restored, the end not recorded
        ("restore.finish", None, "completed"),  # and the safety backup deleted
        (mid_load["sqlite"], f"read.{art['postgres']}.half", "rolled_back"),  # heal killed mid-load
        (mid_load["objects"], "rollback.sqlite", "rolled_back"),  # heal killed between stores
        ("swap.moved_aside", "swap.moved_aside", "rolled_back"),  # heal killed mid-swap
        ("config.file_written", "restore.finish", "rolled_back"),  # heal killed before its end
    ]
    kills, phases, one = 0, [], 0
    for n, (point, heal_point, outcome) in enumerate(cases, 1):
        site.mark(f"v{n}")
        before = site.states()
        done = site.run("restore", backup_id, "--set", "config.mode=apply", "--yes", kill_at=point)
        assert done.returncode == -signal.SIGKILL, (point, done.stderr[-3000:])
        (progress,), = site.query("SELECT progress FROM backups_app_restore ORDER BY id DESC LIMIT 1")
        loading = [name for name, at in mid_load.items() if at == point]
        assert all(json.loads(progress)[name]["state"] == "running" for name in loading), (point, progress)
        kills += 1
        phases.append(point.split("#")[0])
        time.sleep(STALE + 0.5)
        if heal_point:
            healing = site.run("sweepruns", kill_at=heal_point)
            assert healing.returncode == -signal.SIGKILL, (heal_point, healing.stderr[-3000:])
            # the run is still the restore lock's holder: nothing else may run until it is healed
            assert site.query("SELECT name FROM backups_app_operationlock") == [("restore",)]
            refused = site.run("backup")
            assert refused.returncode == 1 and "Backup refused: restore_" in refused.stderr
            kills += 1
            phases.append(f"heal:{heal_point}")
        swept = 2 if point.startswith("backup.") else 1  # the safety backup's run too
        assert site.sweep_after(STALE if heal_point else 0) == f"{swept} stale run(s) marked failed"
        (status, error, log), = site.query("SELECT status, error, log FROM backups_app_restore ORDER BY id DESC "
                                           "LIMIT 1")
        state = one_state(site.states(), before, backup)
        assert (status, state) == (outcome, "backup" if outcome == "completed" else "before"), (point, error, log)
        one += 1 + bool(heal_point)
        if heal_point:
            assert log.count("The stale-run sweep took this restore over to heal it") == 2
        site.check()
    site.mark("again")
    site.ok("restore", backup_id, "--set", "config.mode=apply", "--yes")  # a new restore works
    assert site.states() == backup
    site.check()
    with capsys.disabled():
        print(f"\nkills: {kills} at phases {', '.join(phases)}; one state: {one}/{kills}; "
              f"outcomes: {', '.join(sorted({c[2] for c in cases}))}; a new restore after each: ok; "
              f"fresh databases of killed loads left: {len(site.side_databases)}")
    with stacks.pg_connect("postgres") as conn:
        for name in site.side_databases:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
