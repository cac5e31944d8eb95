"""Shared fixtures: a temporary backup storage, fresh PostgreSQL databases on the real server,
and helpers to configure BACKUP_SOURCES for a test."""

import os
import uuid

import psycopg
import pytest

from backupsite.env import Environment
from backupsite.storage_env import storage_entry
from tests.servers import moto_s3_server

pytest_plugins = ["tests.ops_fixtures"]

PG = {"host": os.environ.get("TEST_PG_HOST", "127.0.0.1"), "port": int(os.environ.get("TEST_PG_PORT", "5432")),
      "user": os.environ.get("TEST_PG_USER", "postgres")}


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
    folder.mkdir()
    (folder / "doc.txt").write_text("original")
    sources(uploads=("backups_app.components.uploads.UploadsComponent", {"path": str(folder)}))
    return folder


def _admin_conn():
    return psycopg.connect(dbname="postgres", autocommit=True, **PG)


@pytest.fixture
def make_pg_database():
    """Create fresh databases on the real server (dropped afterwards); returns their names."""
    created = []

    def make():
        name = f"bk_test_{uuid.uuid4().hex[:12]}"
        with _admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield make
    with _admin_conn() as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database(make_pg_database):
    return make_pg_database()


def pg_options(dbname):
    return {**PG, "dbname": dbname}


def pg_connect(dbname):
    return psycopg.connect(dbname=dbname, autocommit=True, **PG)


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
