"""Faults of the stores and of the storage (issue 12 §4), against real servers the tests start and
kill: a private PostgreSQL cluster, a private redis-server and moto's S3 server, each killed in
the middle of a backup (while its dump is being written) and of a restore (while the backup is
being loaded), and BACKUP_DIR / BACKUP_SPOOL_DIR on a small tmpfs that fills up during a backup.
Each time the run fails with a readable error that names the store (no Python exception name, no
secret), no partial file is left, and the store's data is untouched, or put back by the command
the error names. The kill happens at an exact byte through ``faults.acting_at``."""

import os
import re
import signal
import sqlite3
import subprocess
import time
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
import pytest

from backups_app.faults import acting_at
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from backups_app.services.sweep import sweep_stale_runs
from tests.servers import postgres_cluster, redis_server, start_moto
from tests.stacks import ENGINES, sqlite_source, uploads_source

pytestmark = pytest.mark.django_db

SECRET = "pw-s3cr3t-store-faults"
PYTHON_NAMES = re.compile(r"Traceback|\b[A-Za-z]+(Error|Exception)\b")
BIG = 3 * 1024 * 1024  # random bytes per store: its artifact is written and read in several MiB


def readable(text, store):
    """The error a run ends with: names the store, no Python exception name, no secret."""
    assert re.search(rf"\b{store}\b", text), text
    assert not PYTHON_NAMES.search(text), text
    assert SECRET not in text, text


def assert_nothing_left(backup_storage_dir, spool):
    """No set in storage but completed ones, nothing in the spool."""
    completed = set(Backup.objects.filter(status=RunStatus.COMPLETED).values_list("backup_id", flat=True))
    stored = {p.name for p in Path(backup_storage_dir).glob("*")}
    assert stored <= completed, stored - completed
    assert list(Path(spool).glob("*")) == []


# --- The servers, killed and started again ---------------------------------------------------------

class Cluster:
    """A postgres_cluster() that can be killed (``pg_ctl stop -m immediate``: no shutdown
    checkpoint, every backend gone at once) and started again on the same port."""

    def __init__(self, server):
        self.server = server
        with self.connect("postgres") as conn:
            self.data = conn.execute("SHOW data_directory").fetchone()[0]
        pid = Path(self.data, "postmaster.pid").read_text().split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        self.options = argv[argv.index("-D") + 2:]  # what pg_ctl -o gave the postmaster
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def connect(self, dbname):
        return psycopg.connect(host=self.server["host"], port=self.server["port"], user="postgres", dbname=dbname,
                               autocommit=True)

    def pg_ctl(self, *args):
        subprocess.run([*self.as_postgres, f"{self.server['bin_dir']}/pg_ctl", "-D", self.data, *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self):
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def start(self):
        self.pg_ctl("-o", " ".join(self.options), "-l", f"{self.data}/../log", "-w", "-t", "60", "start")


class RedisProcess:
    """A redis_server() (its data in an append-only file, synced at every write) that can be
    killed with SIGKILL and started again with the same arguments, its data read back from disk."""

    def __init__(self, url):
        import redis

        self.url, self.client = url, redis.Redis.from_url(url)
        self.pid = self.client.info("server")["process_id"]
        config = self.client.config_get("*")  # redis-server rewrites its command line: ask it
        self.argv = ["redis-server", *(arg for key in ("port", "bind", "dir", "save", "appendonly", "appendfsync",
                                                      "requirepass") for arg in (f"--{key}", config[key]))]
        self.restarted = None

    def kill(self):
        self.client.connection_pool.disconnect()
        os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: dead(self.pid))  # before the dump goes on

    def start(self):
        self.restarted = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.restarted.pid
        wait_until(self.answers)

    def answers(self):
        try:
            return self.client.ping()
        except Exception:
            return False

    def keys(self, db=0):
        with self.client.__class__.from_url(self.url.rsplit("/", 1)[0] + f"/{db}") as client:
            return {key: client.get(key) for key in client.keys()}


def dead(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within 30 s"
        time.sleep(0.1)


class Moto:
    """moto's S3 server of this test alone, stopped and started again on the same port (its
    buckets live on in this process)."""

    def __init__(self):
        self.server, self.endpoint = start_moto()
        self.port = self.server._port

    def kill(self):
        self.server.stop()

    def start(self):
        self.server, _ = start_moto(self.port)


@pytest.fixture
def cluster():
    with postgres_cluster() as server:
        cluster = Cluster(server)
        with cluster.connect("postgres") as conn:
            conn.execute(f"ALTER ROLE postgres PASSWORD '{SECRET}'")  # trust still lets us in
            conn.execute("CREATE DATABASE app")
        with cluster.connect("app") as conn:
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body bytea)")
            # 10 MB: more than the socket buffers hold, so the server dies with rows still to send
            rows = [(i, os.urandom(10_000)) for i in range(1000)]
            conn.cursor().executemany("INSERT INTO docs VALUES (%s, %s)", rows)
        yield cluster


@pytest.fixture
def redis_process():
    with redis_server("--appendonly", "yes", "--appendfsync", "always", password=SECRET) as url:
        process = RedisProcess(url)
        # 20 MB in 20000 keys, dumped in batches: more than the socket buffers hold, so the server
        # dies with some of them still to send
        for batch in range(20):
            process.client.mset({f"k{batch}-{i}": os.urandom(1000) for i in range(1000)})
        try:
            yield process
        finally:
            if process.restarted is not None:
                process.restarted.terminate()
                process.restarted.wait()


@pytest.fixture
def moto():
    moto = Moto()
    yield moto
    moto.kill()


def pg_rows(cluster):
    with cluster.connect("app") as conn:
        return conn.execute("SELECT id, md5(body) FROM docs ORDER BY id").fetchall()


@contextmanager
def killed_at(point, server):
    """Kill ``server`` when this process reaches ``point``; start it again after the block."""
    reached = []
    with acting_at(point, lambda: (reached.append(point), server.kill())):
        yield
    assert reached, f"never reached {point}"
    server.start()


# --- A store killed in the middle of a backup -------------------------------------------------------

def test_postgres_killed_mid_dump_fails_the_backup_naming_it_and_leaves_no_file(
        sources, cluster, backup_storage_dir, settings):
    sources(postgres=(ENGINES["postgres"], {**{k: cluster.server[k] for k in ("host", "port", "user")},
                                            "password": SECRET, "dbname": "app"}))
    before = pg_rows(cluster)
    with killed_at("write.postgres.dump.mib#1", cluster):
        backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    readable(backup.error, "postgres")
    assert_nothing_left(backup_storage_dir, settings.BACKUP_SPOOL_DIR)
    assert pg_rows(cluster) == before
    assert backups.create_backup().status == RunStatus.COMPLETED  # the server is back: so are backups


def test_redis_killed_mid_dump_fails_the_backup_naming_it_and_leaves_no_file(
        sources, redis_process, backup_storage_dir, settings):
    sources(redis=(ENGINES["redis"], {"url": redis_process.url}))
    before = redis_process.keys()
    with killed_at("write.redis.dump.zst.mib#1", redis_process):
        backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    readable(backup.error, "redis")
    assert_nothing_left(backup_storage_dir, settings.BACKUP_SPOOL_DIR)
    assert redis_process.keys() == before


def objects_source(sources, moto):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1", aws_access_key_id="key",
                      aws_secret_access_key=SECRET)
    s3.create_bucket(Bucket="media")
    for i in range(30):  # more than the backup fetches ahead of the archive it writes
        s3.put_object(Bucket="media", Key=f"doc{i}.bin", Body=os.urandom(BIG // 30))
    sources(objects=(ENGINES["objects"], {"endpoint_url": moto.endpoint, "buckets": "media", "region": "us-east-1",
                                          "access_key_id": "key", "secret_access_key": SECRET}))

    def state():
        listed = s3.list_objects_v2(Bucket="media").get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket="media", Key=o["Key"])["Body"].read() for o in listed}

    return s3, state


def test_s3_killed_mid_download_fails_the_backup_naming_the_store_and_leaves_no_file(
        sources, moto, backup_storage_dir, settings):
    _s3, state = objects_source(sources, moto)
    before = state()
    with killed_at("write.objects_media.tar.mib#1", moto):
        backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    readable(backup.error, "objects")
    assert_nothing_left(backup_storage_dir, settings.BACKUP_SPOOL_DIR)
    assert state() == before


# --- A store killed in the middle of a restore ------------------------------------------------------

def test_postgres_killed_mid_load_fails_the_restore_naming_it_and_the_database_is_untouched(
        sources, cluster, backup_storage_dir, settings):
    sources(postgres=(ENGINES["postgres"], {**{k: cluster.server[k] for k in ("host", "port", "user")},
                                            "password": SECRET, "dbname": "app"}))
    backup = backups.create_backup()
    with cluster.connect("app") as conn:
        conn.execute("DELETE FROM docs WHERE id % 2 = 0")
    before = pg_rows(cluster)
    with killed_at("read.postgres.dump.half#2", cluster):  # the plan's checksum pass read it once
        restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    readable(restore.error, "postgres")
    assert "Nothing was changed" in restore.error
    assert pg_rows(cluster) == before  # loaded into a fresh database: the live one never saw it
    assert_nothing_left(backup_storage_dir, settings.BACKUP_SPOOL_DIR)
    assert restores.start_restore(backup.backup_id, confirm=True).status == RunStatus.COMPLETED
    assert len(pg_rows(cluster)) == 1000


def test_redis_killed_mid_load_fails_the_restore_naming_it_and_db0_is_untouched(
        sources, redis_process, backup_storage_dir, settings):
    sources(redis=(ENGINES["redis"], {"url": redis_process.url}))
    backup = backups.create_backup()
    redis_process.client.flushdb()
    redis_process.client.set("after", "the backup")
    before = redis_process.keys()
    with killed_at("read.redis.dump.zst.half#2", redis_process):
        restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    readable(restore.error, "redis")
    assert redis_process.keys() == before  # loaded into a spare db: db 0 never saw it
    assert_nothing_left(backup_storage_dir, settings.BACKUP_SPOOL_DIR)
    assert restores.start_restore(backup.backup_id, confirm=True).status == RunStatus.COMPLETED
    assert len(redis_process.keys()) == 20000


def test_s3_killed_mid_upload_fails_the_restore_naming_the_store_and_its_command_puts_it_back(
        sources, moto, backup_storage_dir, settings):
    s3, state = objects_source(sources, moto)
    backup = backups.create_backup()
    s3.delete_object(Bucket="media", Key="doc1.bin")
    s3.put_object(Bucket="media", Key="new.bin", Body=b"after the backup")
    before = state()
    with killed_at("read.objects_media.tar.half#2", moto):
        restore = restores.start_restore(backup.backup_id, confirm=True)
    readable(restore.error, "objects")
    if restore.status == RunStatus.FAILED:  # the rollback could not reach the store either
        safety = Backup.objects.get(pk=restore.safety_backup_id)
        command = f"manage.py restore {safety.backup_id} --yes"
        assert command in restore.error and safety.pinned
        assert restores.start_restore(safety.backup_id, confirm=True).status == RunStatus.COMPLETED
    else:
        assert restore.status == RunStatus.ROLLED_BACK
    assert state() == before
    assert_nothing_left(backup_storage_dir, settings.BACKUP_SPOOL_DIR)


# --- A full disk during a backup ---------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (unmounted afterwards); skips where mounting is not allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_backup_dir_fails_the_backup_with_no_space_and_leaves_no_set(sources, small_disk, settings, tmp_path):
    sources(uploads=uploads_source(tmp_path / "uploads", {"big.bin": os.urandom(BIG)}))
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(small_disk)}}}
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    assert "no space" in backup.error.lower()
    readable(backup.error, "uploads")
    assert list(small_disk.iterdir()) == []
    assert_nothing_left(small_disk, settings.BACKUP_SPOOL_DIR)


def test_a_full_spool_fails_the_backup_with_no_space_and_leaves_no_set(sources, small_disk, settings, tmp_path,
                                                                        backup_storage_dir):
    engine, options = sqlite_source(tmp_path / "app.sqlite3", "t", [])
    with closing(sqlite3.connect(tmp_path / "app.sqlite3")) as conn, conn:
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(os.urandom(1000),) for _ in range(BIG // 1000)])
    sources(sqlite=(engine, options))
    settings.BACKUP_SPOOL_DIR = small_disk
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    assert "no space" in backup.error.lower()
    readable(backup.error, "sqlite")
    assert list(small_disk.iterdir()) == []
    assert_nothing_left(backup_storage_dir, small_disk)



# --- The backup storage (S3) killed in the middle of a backup ----------------------------------------

def test_s3_storage_killed_mid_backup_fails_it_and_its_files_go_once_the_storage_is_back(
        sources, moto, settings, tmp_path):
    from tests.conftest import bucket_keys, s3_client, s3_entry

    s3_client(moto.endpoint).create_bucket(Bucket="backups")
    settings.STORAGES = {**settings.STORAGES, "backups": s3_entry(moto.endpoint, "backups")}
    settings.BACKUP_STORAGE = "s3"
    settings.BACKUP_PARALLEL = "1"  # one after the other: the SQLite artifact is whole when the storage dies
    engine, options = sqlite_source(tmp_path / "app.sqlite3", "t", [])
    with closing(sqlite3.connect(tmp_path / "app.sqlite3")) as conn, conn:
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(os.urandom(1000),) for _ in range(BIG // 1000)])
    sources(sqlite=(engine, options), uploads=uploads_source(tmp_path / "uploads", {"big.bin": os.urandom(BIG)}))
    with killed_at("write.uploads.tar.zst.mib#1", moto):  # the SQLite artifact is stored by then
        backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    readable(backup.error, "uploads")
    assert "S3 endpoint is unreachable" in backup.error
    sweep_stale_runs()  # the storage is back: what the failed backup left there goes
    assert bucket_keys(moto.endpoint, "backups") == []
    assert backups.create_backup().status == RunStatus.COMPLETED
