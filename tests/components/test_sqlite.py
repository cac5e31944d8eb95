"""SQLite files: online copies restored exactly, foreign keys included."""

import os
import sqlite3
from contextlib import closing

import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.stacks import ENGINES


def make_sqlite(path):
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT)")
        conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER REFERENCES docs(id), "
                      "body BLOB)")
        conn.executemany("INSERT INTO docs VALUES (?, ?)", [(i, f"제목 {i}") for i in range(200)])
        conn.executemany("INSERT INTO chunks (doc_id, body) VALUES (?, ?)",
                         [(i % 200, os.urandom(32)) for i in range(1000)])


def dump_sqlite(path):
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.iterdump())


@pytest.mark.django_db
def test_sqlite_round_trip_with_foreign_keys(sources, tmp_path, backup_storage_dir):
    first, second = tmp_path / "app.db", tmp_path / "other.sqlite3"
    make_sqlite(first)
    make_sqlite(second)
    sources(sqlite=(ENGINES["sqlite"], {"paths": f"{first},{second}"}))
    before = dump_sqlite(first), dump_sqlite(second)
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["sqlite"]["counts"] == {
        "app": {"chunks": 1000, "docs": 200}, "other": {"chunks": 1000, "docs": 200}}
    stored = backup_storage_dir / backup.backup_id / "sqlite_app.db"
    with closing(sqlite3.connect(stored)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with closing(sqlite3.connect(first)) as conn, conn:
        conn.execute("DELETE FROM chunks WHERE id % 2 = 0")
        conn.execute("DROP TABLE docs")
    second.unlink()
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert (dump_sqlite(first), dump_sqlite(second)) == before
