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


def _tar_of(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, b""


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, b""


def _file(name, data=b"pwned\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_chained_relative_links_cannot_escape(tmp_path):
    """Each link alone stays inside by its text; resolved through the one before, it does not."""
    from backups_app.archive.safetar import safe_extract
    from backups_app.errors import UnsafeArchive

    dest = tmp_path / "x" / "y" / "dest"
    dest.mkdir(parents=True)
    archive = _tar_of([_dir("a"), _dir("a/b"), _link("a/b/c", ".."), _link("a/b/c/d", "../../.."),
                       _file("a/b/c/d/PWNED")])
    with pytest.raises(UnsafeArchive, match="'a/b/c/d': link to '../../..' leaves the folder"):
        safe_extract(io.BytesIO(archive), dest)
    assert not list(tmp_path.rglob("PWNED"))


def test_paths_too_long_to_resolve_are_refused(tmp_path):
    """CVE-2025-4517: past PATH_MAX, realpath stops resolving links and tarfile's own filter is
    fooled (Python < 3.11.13); such members are refused before anything is written."""
    from backups_app.archive.safetar import safe_extract
    from backups_app.errors import UnsafeArchive

    dest = tmp_path / "dest"
    dest.mkdir()
    long_dir, steps, members, path = "d" * 247, "abcdefghijklmnop", [], ""
    for step in steps:
        members += [_dir(os.path.join(path, long_dir)), _link(os.path.join(path, step), long_dir)]
        path = os.path.join(path, long_dir)
    link_path = os.path.join(*steps, "l" * 254)
    members += [_link(link_path, "../" * len(steps)), _link("escape", link_path + "/.."), _file("escape/PWNED")]
    with pytest.raises(UnsafeArchive, match="path too long to check safely"):
        safe_extract(io.BytesIO(_tar_of(members)), dest)
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.django_db
def test_restored_folder_keeps_its_mode(sources, uploads_dir, settings):
    settings.BACKUP_COMPRESSION = "none"
    uploads_dir.chmod(0o755)
    sources(uploads=(UPLOADS, {"path": str(uploads_dir)}))
    backup = backups.create_backup()
    (uploads_dir / "top.txt").write_text("changed")
    assert restores.start_restore(backup.backup_id, confirm=True).status == RunStatus.COMPLETED
    assert (uploads_dir.stat().st_mode & 0o777) == 0o755
