"""Uploads folder and SQLite files: round trips and the safety of tar extraction."""

import io
import os
import sqlite3
import subprocess
import tarfile
from contextlib import closing

import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, restores

UPLOADS = "backups_app.components.uploads.UploadsComponent"
SQLITE = "backups_app.components.sqlite.SQLiteComponent"


def tree(root):
    found = {}
    for base, dirs, files in os.walk(root):
        for d in dirs:
            found[os.path.relpath(os.path.join(base, d), root) + "/"] = None
        for f in files:
            path = os.path.join(base, f)
            found[os.path.relpath(path, root)] = open(path, "rb").read()
    return found


@pytest.fixture
def uploads_dir(tmp_path):
    root = tmp_path / "uploads"
    (root / "a" / "b" / "깊은 폴더").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "top.txt").write_text("top")
    (root / "a" / "b" / "깊은 폴더" / "파일 ✓.bin").write_bytes(os.urandom(70000))
    (root / "a" / "empty.dat").write_bytes(b"")
    os.symlink("../top.txt", root / "a" / "link-to-top")
    return root


@pytest.mark.django_db
@pytest.mark.parametrize("compression,ext,tar_flag", [("zstd", ".tar.zst", "--zstd"), ("gzip", ".tar.gz", "-z")])
def test_uploads_round_trip(sources, uploads_dir, settings, backup_storage_dir, compression, ext, tar_flag, tmp_path):
    settings.BACKUP_COMPRESSION = compression
    sources(uploads=(UPLOADS, {"path": str(uploads_dir)}))
    before = tree(uploads_dir)
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["uploads"]["counts"] == {"files": 3, "bytes": 70003}

    artifact = backup_storage_dir / backup.backup_id / f"uploads{ext}"
    out = tmp_path / "by-hand"
    out.mkdir()
    subprocess.run(["tar", tar_flag, "-xf", str(artifact), "-C", str(out)], check=True)
    assert tree(out) == before

    (uploads_dir / "top.txt").write_text("changed")
    (uploads_dir / "new.txt").write_text("added after the backup")
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert tree(uploads_dir) == before
    assert os.readlink(uploads_dir / "a" / "link-to-top") == "../top.txt"
    assert sorted(p.name for p in uploads_dir.parent.iterdir()) == ["by-hand", "spool", "uploads"] or \
        not any(p.name.startswith(".uploads") for p in uploads_dir.parent.iterdir())


def malicious_tar(member):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buf.getvalue()


def _member(name, kind=tarfile.REGTYPE, linkname="", size=1):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member", [
    _member("/etc/evil"),
    _member("../escape.txt"),
    _member("ok/../../escape.txt"),
    _member("link", tarfile.SYMTYPE, "../../etc/passwd"),
    _member("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
    _member("hard", tarfile.LNKTYPE, "../outside"),
    _member("dev", tarfile.CHRTYPE),
    _member("fifo", tarfile.FIFOTYPE),
], ids=lambda m: m.name)
def test_safe_extract_refuses_malicious_members(member, tmp_path):
    from backups_app.archive.safetar import safe_extract
    from backups_app.errors import UnsafeArchive

    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match="Refusing archive member"):
        safe_extract(io.BytesIO(malicious_tar(member)), dest)
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.django_db
def test_restore_with_malicious_member_leaves_live_folder_untouched(sources, uploads_dir, backup_storage_dir, settings):
    import hashlib
    import json

    settings.BACKUP_COMPRESSION = "none"
    sources(uploads=(UPLOADS, {"path": str(uploads_dir)}))
    backup = backups.create_backup()
    # A tampered set whose checksums were forged to match: extraction itself must refuse it.
    evil = malicious_tar(_member("../../pwned.txt"))
    folder = backup_storage_dir / backup.backup_id
    (folder / "uploads.tar").write_bytes(evil)
    manifest = json.loads((folder / "metadata.json").read_text())
    manifest["artifacts"]["uploads.tar"].update(size=len(evil), sha256=hashlib.sha256(evil).hexdigest())
    (folder / "metadata.json").write_text(json.dumps(manifest))
    (uploads_dir / "after.txt").write_text("live data")
    before = tree(uploads_dir)

    restore = restores.start_restore(backup.backup_id, confirm=True)

    assert restore.status == RunStatus.ROLLED_BACK
    assert "Refusing archive member '../../pwned.txt'" in restore.error
    assert tree(uploads_dir) == before
    assert not (uploads_dir.parent.parent / "pwned.txt").exists()


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
    sources(sqlite=(SQLITE, {"paths": f"{first},{second}"}))
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
