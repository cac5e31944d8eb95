"""Backups through the archive options end to end: PostgreSQL, uploads and SQLite backed up into
S3 (moto's real HTTP server) with age encryption on, restored and compared exactly; failures of
the store and of the key leave nothing behind and touch nothing."""

import shutil
import sqlite3
from contextlib import closing

import pytest

from backups_app.models import Backup, OffsiteStatus, RunStatus
from backups_app.services.backups import create_backup, delete_backup, download_url, verify_backup
from backups_app.services.offsite import copy_offsite
from backups_app.services.restores import start_restore
from tests.conftest import bucket_keys, new_bucket, pg_connect, pg_options, s3_client, s3_entry

ENGINES = "backups_app.components"
pytestmark = pytest.mark.django_db


@pytest.fixture
def stack(sources, pg_database, tmp_path):
    """A small real stack: a PostgreSQL table, an uploads folder, a SQLite file."""
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO docs SELECT g, md5(g::text) FROM generate_series(1, 500) g")
    uploads = tmp_path / "uploads"
    (uploads / "sub").mkdir(parents=True)
    (uploads / "a.txt").write_text("alpha")
    (uploads / "sub" / "b.bin").write_bytes(bytes(range(256)) * 400)
    db = tmp_path / "app.sqlite3"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.executemany("INSERT INTO notes (text) VALUES (?)", [(f"note {i}",) for i in range(100)])
        conn.commit()
    sources(postgres=(f"{ENGINES}.postgres.PostgresComponent", pg_options(pg_database)),
            uploads=(f"{ENGINES}.uploads.UploadsComponent", {"path": str(uploads)}),
            sqlite=(f"{ENGINES}.sqlite.SQLiteComponent", {"paths": [str(db)]}))
    return {"pg": pg_database, "uploads": uploads, "db": db}


def snapshot(stack):
    with pg_connect(stack["pg"]) as conn:
        rows = conn.execute("SELECT id, body FROM docs ORDER BY id").fetchall()
    files = {str(p.relative_to(stack["uploads"])): p.read_bytes()
             for p in sorted(stack["uploads"].rglob("*")) if p.is_file()}
    with closing(sqlite3.connect(stack["db"])) as conn:
        notes = conn.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
    return rows, files, notes


def damage(stack):
    with pg_connect(stack["pg"]) as conn:
        conn.execute("DELETE FROM docs WHERE id > 100")
        conn.execute("UPDATE docs SET body = 'changed'")
    (stack["uploads"] / "a.txt").write_text("changed")
    (stack["uploads"] / "new.txt").write_text("new")
    with closing(sqlite3.connect(stack["db"])) as conn:
        conn.execute("DELETE FROM notes WHERE id % 2 = 0")
        conn.commit()


def test_round_trip_through_s3_with_encryption(stack, s3_backups, age_key, moto_endpoint, settings):
    before = snapshot(stack)
    backup = create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    keys = bucket_keys(moto_endpoint, s3_backups)
    assert keys == sorted(f"{backup.backup_id}/{name}" for name in (
        "metadata.json", "SHA256SUMS", "postgres.dump.age", "uploads.tar.zst.age", "sqlite_app.db.age"))
    assert backup.manifest["encryption"]["recipients"] == settings.BACKUP_AGE_RECIPIENTS
    assert verify_backup(backup.backup_id)["ok"]

    damage(stack)
    assert snapshot(stack) != before
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert snapshot(stack) == before
    assert f"reading {backup.backup_id} from its primary copy" in restore.log
    # The safety backup went through S3 too and was removed afterwards.
    assert all(k.startswith(backup.backup_id) for k in bucket_keys(moto_endpoint, s3_backups))


@pytest.mark.parametrize("identity", ["missing", "wrong"])
def test_restore_without_the_right_identity_touches_nothing(stack, age_key, settings, tmp_path, identity):
    backup = create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    damage(stack)
    damaged = snapshot(stack)
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
    assert snapshot(stack) == damaged


def test_presigned_download_url_serves_the_stored_file(stack, s3_backups, settings):
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
        stack, offsite_bucket, age_key, moto_endpoint, backup_storage_dir):
    before = snapshot(stack)
    backup = create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert (backup.offsite_status, backup.offsite_error) == (OffsiteStatus.VERIFIED, "")
    assert backup.offsite_verified_at is not None and "offsite copy in s3://" in backup.log
    stored = sorted(p.name for p in (backup_storage_dir / backup.backup_id).iterdir())
    assert bucket_keys(moto_endpoint, offsite_bucket) == [f"{backup.backup_id}/{name}" for name in stored]

    # Server loss: the primary copy is gone; the restore reads the offsite copy.
    shutil.rmtree(backup_storage_dir / backup.backup_id)
    damage(stack)
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.plan["copy"] == "offsite" and "from its offsite copy" in restore.log
    assert snapshot(stack) == before
    # The safety backup is temporary: never copied offsite.
    assert all(k.startswith(backup.backup_id) for k in bucket_keys(moto_endpoint, offsite_bucket))

    delete_backup(backup.backup_id)
    assert bucket_keys(moto_endpoint, offsite_bucket) == []
    assert not (backup_storage_dir / backup.backup_id).exists()


def test_failed_offsite_copy_keeps_the_backup_and_records_why(stack, settings, moto_endpoint, backup_storage_dir):
    missing = new_bucket(moto_endpoint, create=False)
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": s3_entry(moto_endpoint, missing, "BACKUP_OFFSITE_")}
    backup = create_backup(["uploads"])
    assert backup.status == RunStatus.COMPLETED
    assert backup.offsite_status == OffsiteStatus.FAILED
    assert f"bucket '{missing}' does not exist" in backup.offsite_error and backup.offsite_error in backup.log
    assert (backup_storage_dir / backup.backup_id / "metadata.json").exists()


def test_offsite_copy_that_does_not_verify_is_removed(stack, settings, offsite_bucket, moto_endpoint,
                                                      backup_storage_dir):
    backup = create_backup(["uploads"])
    (backup_storage_dir / backup.backup_id / "uploads.tar.zst").write_bytes(b"rotted")  # damaged before the copy
    assert copy_offsite(backup, lambda line: None) == OffsiteStatus.FAILED
    assert "does not match its manifest" in backup.offsite_error
    assert bucket_keys(moto_endpoint, offsite_bucket) == []


def test_restore_uses_the_offsite_copy_when_the_primary_one_is_damaged(stack, settings, tmp_path,
                                                                       backup_storage_dir):
    from backupsite.storage_env import storage_entry

    settings.STORAGES = {**settings.STORAGES, "backups_offsite": storage_entry(
        {"BACKUP_OFFSITE_STORAGE": "local", "BACKUP_OFFSITE_DIR": str(tmp_path / "nas")}, "BACKUP_OFFSITE_", None)}
    before = snapshot(stack)
    backup = create_backup(["uploads", "sqlite"])
    assert backup.offsite_status == OffsiteStatus.VERIFIED, backup.offsite_error
    assert (tmp_path / "nas" / backup.backup_id / "metadata.json").exists()
    (backup_storage_dir / backup.backup_id / "sqlite_app.db").write_bytes(b"bit rot")
    damage(stack)

    assert not verify_backup(backup.backup_id)["ok"]  # verification reports the primary copy as it is
    restore = start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.plan["copy"] == "offsite"
    assert any("primary copy: sqlite_app.db: " in p and "does not match" in p for p in restore.plan["problems"])
    assert snapshot(stack)[1:] == before[1:]  # uploads and SQLite as backed up
