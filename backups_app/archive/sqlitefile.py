"""SQLite database files: consistent copies through SQLite's online backup API (safe while the
app writes) and the integrity check every copy passes before it is stored or restored."""

import os
import sqlite3
from contextlib import closing

from backups_app.errors import ComponentError

#: The files beside a database that hold part of it: the WAL and its index, a rollback journal.
SIDECARS = ("-wal", "-shm", "-journal")


def connect_readonly(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def online_copy(source, target):
    """Copy database ``source`` into ``target`` (created or overwritten) in one transaction."""
    try:
        with closing(connect_readonly(source)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
    except sqlite3.OperationalError as exc:
        if "full" not in str(exc):  # SQLITE_FULL: "database or disk is full"
            raise
        raise ComponentError(f"no space left on device for the copy of {source} in {os.path.dirname(target)} "
                             "(BACKUP_SPOOL_DIR): free some, or point BACKUP_SPOOL_DIR at a larger disk") from None


def check_integrity(path):
    with closing(connect_readonly(path)) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise ComponentError(f"SQLite integrity check failed for {path}: {result[:5]}")


def settle(path):
    """Fold what lies beside database ``path`` into it (the WAL, by a checkpoint; a hot journal, rolled
    back by opening it), so that the file alone holds it and its sidecars may be removed."""
    try:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # not a database any more: nothing beside it is worth keeping


def remove_sidecars(path):
    for suffix in SIDECARS:
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def fsync_path(path, flags=os.O_RDONLY):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_database(staged, target):
    """Put the checked database file ``staged`` (beside ``target``, on its file system) in place of
    ``target`` in one atomic rename, durably (the file and the folder synced), and remove the old
    file's WAL, WAL index and journal: left there, SQLite would apply them to the new file."""
    fsync_path(staged)
    if os.path.exists(target):
        settle(target)
    os.replace(staged, target)
    remove_sidecars(target)
    fsync_path(os.path.dirname(os.path.abspath(target)))
