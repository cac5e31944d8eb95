"""SQLite database files: consistent copies through SQLite's online backup API (safe while the
app writes) and the integrity check every copy passes before it is stored or restored."""

import sqlite3
from contextlib import closing

from backups_app.errors import ComponentError


def connect_readonly(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def online_copy(source, target):
    """Copy database ``source`` into ``target`` (created or overwritten) in one transaction."""
    with closing(connect_readonly(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def check_integrity(path):
    with closing(connect_readonly(path)) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise ComponentError(f"SQLite integrity check failed for {path}: {result[:5]}")
