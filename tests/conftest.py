"""Shared fixtures: a temporary backup storage, fresh PostgreSQL databases on the real server,
and helpers to configure BACKUP_SOURCES for a test."""

import os
import uuid

import psycopg
import pytest

pytest_plugins = ["tests.ops_fixtures"]

PG = {"host": os.environ.get("TEST_PG_HOST", "127.0.0.1"), "port": int(os.environ.get("TEST_PG_PORT", "5432")),
      "user": os.environ.get("TEST_PG_USER", "postgres")}


@pytest.fixture(autouse=True)
def backup_storage_dir(settings, tmp_path):
    """Every test writes backups into its own folder and spools into its own scratch space."""
    location = tmp_path / "backups"
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}}}
    settings.BACKUP_SPOOL_DIR = tmp_path / "spool"
    settings.BACKUP_HOOKS = {}
    settings.BACKUP_KEEP_SAFETY = False
    settings.BACKUP_HEARTBEAT_SECONDS = 0
    return location


@pytest.fixture
def sync_worker(settings):
    """Enqueued runs execute at once in this process (django-q2's sync mode, read at use by
    services.runs.enqueue), so 'queued' work really happens in the test."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}


@pytest.fixture
def sources(settings):
    """``sources(name=(engine_class_path, options), ...)`` sets BACKUP_SOURCES for the test."""

    def configure(**entries):
        settings.BACKUP_SOURCES = {name: {"ENGINE": engine, "OPTIONS": options}
                                   for name, (engine, options) in entries.items()}
        return settings.BACKUP_SOURCES

    return configure


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
