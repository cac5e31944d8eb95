"""The uploads folder: round trips checked with the stock tar, the restore of a tampered set that
extraction refuses, the folder's mode kept."""

import os
import subprocess

import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.archive.test_safetar import _member, malicious_tar
from tests.conftest import forge_artifact
from tests.stacks import ENGINES


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
    sources(uploads=(ENGINES["uploads"], {"path": str(uploads_dir)}))
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


@pytest.mark.django_db
def test_restore_with_malicious_member_leaves_live_folder_untouched(sources, uploads_dir, backup_storage_dir, settings):
    settings.BACKUP_COMPRESSION = "none"
    sources(uploads=(ENGINES["uploads"], {"path": str(uploads_dir)}))
    backup = backups.create_backup()
    # A set forged so that stored checksums and catalog agree: extraction itself must refuse it.
    forge_artifact(backup_storage_dir, backup, "uploads.tar", malicious_tar(_member("../../pwned.txt")))
    (uploads_dir / "after.txt").write_text("live data")
    before = tree(uploads_dir)

    restore = restores.start_restore(backup.backup_id, confirm=True)

    assert restore.status == RunStatus.ROLLED_BACK
    assert "Refusing archive member '../../pwned.txt'" in restore.error
    assert tree(uploads_dir) == before
    assert not (uploads_dir.parent.parent / "pwned.txt").exists()


@pytest.mark.django_db
def test_restored_folder_keeps_its_mode(sources, uploads_dir, settings):
    settings.BACKUP_COMPRESSION = "none"
    uploads_dir.chmod(0o755)
    sources(uploads=(ENGINES["uploads"], {"path": str(uploads_dir)}))
    backup = backups.create_backup()
    (uploads_dir / "top.txt").write_text("changed")
    assert restores.start_restore(backup.backup_id, confirm=True).status == RunStatus.COMPLETED
    assert (uploads_dir.stat().st_mode & 0o777) == 0o755
