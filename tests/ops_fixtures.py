"""Fixtures for the operations tests: a small real data stack (an uploads folder and a SQLite
database in the test's tmp folder) configured as backup sources. Import the fixtures by name."""

import sqlite3
from contextlib import closing

import pytest

UPLOADS = "backups_app.components.uploads.UploadsComponent"
SQLITE = "backups_app.components.sqlite.SQLiteComponent"
POSTGRES = "backups_app.components.postgres.PostgresComponent"


def make_stack(root):
    uploads = root / "uploads"
    (uploads / "docs").mkdir(parents=True)
    for n in range(5):
        (uploads / "docs" / f"file{n}.txt").write_bytes(b"x" * (100 + n))
    db = root / "app.sqlite3"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {n}",) for n in range(7)])
        conn.commit()
    return uploads, db


@pytest.fixture
def demo_stack(sources, tmp_path):
    """Uploads and SQLite sources with real data; returns (uploads_dir, sqlite_path)."""
    uploads, db = make_stack(tmp_path / "stack")
    sources(uploads=(UPLOADS, {"path": str(uploads)}), sqlite=(SQLITE, {"paths": [str(db)]}))
    return uploads, db
