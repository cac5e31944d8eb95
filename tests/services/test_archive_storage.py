"""Backups through the archive options end to end: PostgreSQL, uploads and SQLite backed up into
S3 (moto's real HTTP server) with age encryption on, restored and compared exactly; failures of
the store and of the key leave nothing behind and touch nothing."""

import shutil
import sqlite3
import subprocess
from contextlib import closing

import pytest
from django.urls import reverse

from backups_app.models import Backup, OffsiteStatus, RunStatus
from backups_app.services.backups import create_backup, delete_backup, download, download_url
from backups_app.services.offsite import copy_offsite
from backups_app.services.restores import plan_restore, start_restore
from backups_app.services.verification import quick_check
from backupsite.env import Environment
from backupsite.storage_env import storage_entry
from tests.conftest import bucket_keys, new_bucket, s3_client, s3_entry
from tests.stacks import pg_connect

pytestmark = pytest.mark.django_db


def snapshot(pg_stack):
    with pg_connect(pg_stack["pg"]) as conn:
        rows = conn.execute("SELECT id, title FROM documents ORDER BY id").fetchall()
    files = {str(p.relative_to(pg_stack["uploads"])): p.read_bytes()
             for p in sorted(pg_stack["uploads"].rglob("*")) if p.is_file()}
    with closing(sqlite3.connect(pg_stack["sqlite"])) as conn:
        chunks = conn.execute("SELECT id, body FROM chunks ORDER BY id").fetchall()
    return rows, files, chunks


def damage(pg_stack):
    with pg_connect(pg_stack["pg"]) as conn:
        conn.execute("DELETE FROM documents WHERE id > 100")
        conn.execute("UPDATE documents SET title = 'changed'")
    (pg_stack["uploads"] / "a.txt").write_text("changed")
    (pg_stack["uploads"] / "new.txt").write_text("new")
    with closing(sqlite3.connect(pg_stack["sqlite"])) as conn:
        conn.execute("DELETE FROM chunks WHERE id % 2 = 0")
        conn.commit()


def test_round_trip_through_s3_with_encryption(pg_stack, s3_backups, age_key, moto_endpoint, settings):
    before = snapshot(pg_stack)
    backup = create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    keys = bucket_keys(moto_endpoint, s3_backups)
    assert keys == sorted(f"{backup.backup_id}/{name}" for name in (
        "metadata.json", "SHA256SUMS", "postgres.dump.age", "postgres.roles.sql.age", "uploads.tar.zst.age",
        "sqlite_app.db.age"))
    assert backup.manifest["encryption"]["recipients"] == settings.BACKUP_AGE_RECIPIENTS
    assert quick_check(backup.backup_id, "cli")["ok"]

    damage(pg_stack)
    assert snapshot(pg_stack) != before
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert snapshot(pg_stack) == before
    assert f"reading {backup.backup_id} from its primary copy" in restore.log
    # The safety backup went through S3 too and was removed afterwards.
    assert all(k.startswith(backup.backup_id) for k in bucket_keys(moto_endpoint, s3_backups))


@pytest.mark.parametrize("identity", ["missing", "wrong"])
def test_restore_without_the_right_identity_touches_nothing(pg_stack, age_key, settings, tmp_path, identity):
    backup = create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    damage(pg_stack)
    damaged = snapshot(pg_stack)
    if identity == "missing":
        settings.BACKUP_AGE_IDENTITY_FILE = ""
    else:
        from pyrage import x25519

        other = tmp_path / "other.txt"
        other.write_text(f"{x25519.Identity.generate()}\n")
        settings.BACKUP_AGE_IDENTITY_FILE = str(other)
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    assert "Restore refused before any change" in restore.error
    assert ("BACKUP_AGE_IDENTITY_FILE is not set" if identity == "missing" else "no identity") in restore.error
    assert restore.safety_backup is None and Backup.objects.filter(kind=Backup.Kind.SAFETY).count() == 0
    assert snapshot(pg_stack) == damaged


def test_presigned_download_url_serves_the_stored_file(pg_stack, s3_backups, settings):
    import urllib.request

    backup = create_backup(["uploads"])
    assert download_url(backup.backup_id, "uploads.tar.zst") is None  # off by default: stream through the app
    settings.BACKUP_S3_PRESIGNED_DOWNLOADS = True
    settings.BACKUP_S3_PRESIGNED_EXPIRY = 60
    url = download_url(backup.backup_id, "uploads.tar.zst")
    assert "Expires=" in url or "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url) as response:
        body = response.read()
        assert 'filename="uploads.tar.zst"' in response.headers["Content-Disposition"]
    stored = s3_client(settings.STORAGES["backups"]["OPTIONS"]["endpoint_url"]).get_object(
        Bucket=s3_backups, Key=f"{backup.backup_id}/uploads.tar.zst")["Body"].read()
    assert body == stored


@pytest.fixture
def offsite_bucket(settings, moto_endpoint):
    """Primary copies on the local disk, the offsite copy in a fresh S3 bucket."""
    bucket = new_bucket(moto_endpoint)
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": s3_entry(moto_endpoint, bucket, "BACKUP_OFFSITE_")}
    return bucket


def test_offsite_copy_is_verified_serves_restores_and_is_deleted_with_the_backup(
        pg_stack, offsite_bucket, age_key, moto_endpoint, backup_storage_dir):
    before = snapshot(pg_stack)
    backup = create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert (backup.offsite_status, backup.offsite_error) == (OffsiteStatus.VERIFIED, "")
    assert backup.offsite_verified_at is not None and "offsite copy in s3://" in backup.log
    stored = sorted(p.name for p in (backup_storage_dir / backup.backup_id).iterdir())
    assert bucket_keys(moto_endpoint, offsite_bucket) == [f"{backup.backup_id}/{name}" for name in stored]

    # Server loss: the primary copy is gone; the restore reads the offsite copy.
    shutil.rmtree(backup_storage_dir / backup.backup_id)
    damage(pg_stack)
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.plan["copy"] == "offsite" and "from its offsite copy" in restore.log
    assert snapshot(pg_stack) == before
    # The safety backup is temporary: never copied offsite.
    assert all(k.startswith(backup.backup_id) for k in bucket_keys(moto_endpoint, offsite_bucket))

    delete_backup(backup.backup_id)
    assert bucket_keys(moto_endpoint, offsite_bucket) == []
    assert not (backup_storage_dir / backup.backup_id).exists()


def test_failed_offsite_copy_keeps_the_backup_and_records_why(pg_stack, settings, moto_endpoint, backup_storage_dir):
    missing = new_bucket(moto_endpoint, create=False)
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": s3_entry(moto_endpoint, missing, "BACKUP_OFFSITE_")}
    backup = create_backup(["uploads"])
    assert backup.status == RunStatus.COMPLETED
    assert backup.offsite_status == OffsiteStatus.FAILED
    assert f"bucket '{missing}' does not exist" in backup.offsite_error and backup.offsite_error in backup.log
    assert (backup_storage_dir / backup.backup_id / "metadata.json").exists()


def test_offsite_copy_that_does_not_verify_is_removed(pg_stack, settings, offsite_bucket, moto_endpoint,
                                                      backup_storage_dir):
    backup = create_backup(["uploads"])
    (backup_storage_dir / backup.backup_id / "uploads.tar.zst").write_bytes(b"rotted")  # damaged before the copy
    assert copy_offsite(backup, lambda line: None) == OffsiteStatus.FAILED
    assert "does not match its manifest" in backup.offsite_error
    assert bucket_keys(moto_endpoint, offsite_bucket) == []


def test_restore_uses_the_offsite_copy_when_the_primary_one_is_damaged(pg_stack, settings, tmp_path,
                                                                       backup_storage_dir):
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": storage_entry(Environment(
        {"BACKUP_OFFSITE_STORAGE": "local", "BACKUP_OFFSITE_DIR": str(tmp_path / "nas")}), "BACKUP_OFFSITE_", None)}
    before = snapshot(pg_stack)
    backup = create_backup(["uploads", "sqlite"])
    assert backup.offsite_status == OffsiteStatus.VERIFIED, backup.offsite_error
    assert (tmp_path / "nas" / backup.backup_id / "metadata.json").exists()
    (backup_storage_dir / backup.backup_id / "sqlite_app.db").write_bytes(b"bit rot")
    damage(pg_stack)

    assert not quick_check(backup.backup_id, "cli")["ok"]  # verification reports the primary copy as it is
    # The plan says, before anything starts, that the way back goes to the storage that failed.
    assert any(p.startswith("the safety backup is written to the primary backup storage (")
               for p in plan_restore(backup.backup_id)["problems"])
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.plan["copy"] == "offsite"
    assert any("primary copy: sqlite_app.db: " in p and "does not match" in p for p in restore.plan["problems"])
    assert snapshot(pg_stack)[1:] == before[1:]  # uploads and SQLite as backed up


def test_download_of_an_encrypted_set_checks_with_stock_tools(pg_stack, age_key, tmp_path):
    backup = create_backup(["uploads", "sqlite"])
    chunks, length, filename = download(backup.backup_id)
    archive = tmp_path / filename
    archive.write_bytes(b"".join(chunks))
    assert archive.stat().st_size == length
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path)], check=True)
    folder = tmp_path / backup.backup_id
    assert sorted(p.name for p in folder.iterdir()) == [
        "SHA256SUMS", "metadata.json", "sqlite_app.db.age", "uploads.tar.zst.age"]
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder, check=True)
    # One artifact, asked for by its name, comes as its stored (encrypted) file.
    chunks, length, filename = download(backup.backup_id, "sqlite_app.db")
    assert filename == "sqlite_app.db.age" and b"".join(chunks) == (folder / filename).read_bytes()


def test_admin_shows_the_offsite_copy(pg_stack, offsite_bucket, admin_client):
    backup = create_backup(["uploads"])
    page = admin_client.get(reverse("admin:backups_app_backup_change", args=[backup.pk])).content.decode()
    assert "Offsite copy" in page and "Verified" in page
    listing = admin_client.get(reverse("admin:backups_app_backup_changelist") + "?offsite_status=verified")
    assert backup.backup_id in listing.content.decode()
