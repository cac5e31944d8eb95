"""SQLite files: online copies restored exactly, foreign keys included; the switch is one atomic
rename that a kill cannot split, and the old file's WAL never reaches the restored one."""

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path

import pytest

from backups_app.components import get_component
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.conftest import forge_artifact
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


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def crashed_writer(path, statements):
    """Commit ``statements`` in WAL mode and die without a checkpoint, as a killed app does: the
    committed data then lives only in ``path``-wal."""
    def write():
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        with conn:
            for statement in statements:
                conn.execute(statement)
        os.kill(os.getpid(), signal.SIGKILL)

    writer = multiprocessing.get_context("fork").Process(target=write)
    writer.start()
    writer.join()
    assert Path(f"{path}-wal").stat().st_size > 0


@pytest.mark.django_db
def test_restore_over_a_wal_database_drops_the_old_wal(sources, tmp_path):
    db = tmp_path / "app.db"
    make_sqlite(db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    sources(sqlite=(ENGINES["sqlite"], {"paths": str(db)}))
    before = dump_sqlite(db)
    backup = backups.create_backup()
    crashed_writer(db, ["DELETE FROM chunks WHERE id % 3 = 0", "UPDATE docs SET title = 'changed'"])
    db.chmod(0o640)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert dump_sqlite(db) == before  # the old WAL was not replayed over the restored file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".", "app.db-"))] == []
    assert stat.S_IMODE(db.stat().st_mode) == 0o640
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.django_db
def test_restore_killed_before_the_switch_leaves_the_live_file_as_it_was(sources, tmp_path):
    db = tmp_path / "big.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO blobs (body) VALUES (randomblob(?))", [(100_000,)] * 400)  # 40 MB
    sources(sqlite=(ENGINES["sqlite"], {"paths": str(db)}))
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM blobs WHERE id > 10")
    before = sha(db), sha(Path(f"{db}-wal"))
    component = get_component("sqlite")
    reader = backups.open_reader(backup)
    worker = multiprocessing.get_context("fork").Process(
        target=component.restore,
        args=(reader, reader.artifacts_of("sqlite"), component.parse_restore_options({}), lambda line: None))
    worker.start()
    deadline = time.monotonic() + 30
    while not [p for p in tmp_path.glob(".big.db.restoring-*") if p.stat().st_size > 1_000_000]:
        assert worker.is_alive() and time.monotonic() < deadline, "the restore ended before the kill"
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    assert (sha(db), sha(Path(f"{db}-wal"))) == before
    assert list(tmp_path.glob(".big.db.restoring-*"))  # the killed restore's staging, removed next time
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert list(tmp_path.glob(".big.db.restoring-*")) == []
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (400,)


@pytest.mark.django_db
def test_damaged_copy_fails_before_the_switch_and_changes_nothing(sources, tmp_path, backup_storage_dir):
    db = tmp_path / "app.db"
    make_sqlite(db)
    sources(sqlite=(ENGINES["sqlite"], {"paths": str(db)}))
    backup = backups.create_backup()
    data = bytearray((backup_storage_dir / backup.backup_id / "sqlite_app.db").read_bytes())
    data[5000:9000] = b"\xff" * 4000  # pages the integrity check refuses
    forge_artifact(backup_storage_dir, backup, "sqlite_app.db", bytes(data))
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM chunks WHERE id < 100")
    before = sha(db)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    assert "integrity check failed" in restore.error
    assert "the live files were not touched" in restore.error and "Nothing was changed" in restore.error
    assert "rolling back" not in restore.log
    assert sha(db) == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
