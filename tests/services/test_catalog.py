"""The catalog from storage (a new server after a loss): signed sets found in the primary and the
offsite storage are imported as ordinary backups and restore exactly; unsigned, wrongly signed,
tampered, malformed and unfinished sets are refused with the reason, and nothing is imported twice."""

import json
import shutil

import pytest
from django.core.management import call_command

from backups_app.archive import signing
from backups_app.models import AuditEvent, Backup, OffsiteStatus, RunStatus, Trigger
from backups_app.services import catalog
from backups_app.services.backups import create_backup, get_backup
from backups_app.services.restores import start_restore
from tests.conftest import new_bucket, s3_client, s3_entry

pytestmark = pytest.mark.django_db

KEY = "k" * 40
OLD_KEY = "o" * 40


@pytest.fixture
def signed(settings):
    settings.BACKUP_SIGNING_KEY = [KEY]


def lose_catalog():
    """The server burned: the app database is new, the storage is what is left."""
    Backup.objects.all().delete()


def test_a_new_server_imports_the_signed_sets_and_restores_latest(uploads, signed, age_key, backup_storage_dir):
    first = create_backup(description="first")
    (uploads / "doc.txt").write_text("second version")
    second = create_backup(description="second")
    assert (backup_storage_dir / second.backup_id / signing.SIGNATURE_NAME).exists()
    artifacts = {a.name: (a.size_bytes, a.sha256) for a in second.artifacts.all()}
    lose_catalog()
    (uploads / "doc.txt").write_text("lost")

    restore = start_restore("latest", confirm=True)  # no import step: "latest" scans the empty catalog

    assert restore.status == RunStatus.COMPLETED, restore.error
    assert (uploads / "doc.txt").read_text() == "second version"
    imported = Backup.objects.get(backup_id=second.backup_id)
    assert (imported.trigger, imported.status, imported.description) == (Trigger.IMPORT, RunStatus.COMPLETED,
                                                                          "second")
    assert {a.name: (a.size_bytes, a.sha256) for a in imported.artifacts.all()} == artifacts
    assert imported.manifest["components"]["uploads"]["counts"] == second.manifest["components"]["uploads"]["counts"]
    assert imported.created_at == second.created_at and Backup.objects.filter(backup_id=first.backup_id).exists()
    assert AuditEvent.objects.filter(action="catalog.scan").exists()


def test_scan_is_idempotent_and_reports_each_folder(uploads, signed, backup_storage_dir):
    backup = create_backup()
    (backup_storage_dir / "backup_20990101_000000").mkdir()  # a set still being written: no metadata.json
    (backup_storage_dir / "backup_20990101_000000" / "uploads.tar.zst").write_bytes(b"partial")
    (backup_storage_dir / "not-a-set").mkdir()
    lose_catalog()

    first = catalog.scan()
    assert first.imported == [backup.backup_id]
    assert "still being written" in first.skipped["backup_20990101_000000"]
    assert "not a backup set" in first.skipped["not-a-set"]
    again = catalog.scan()
    assert again.imported == [] and again.skipped[backup.backup_id] == catalog.ALREADY_KNOWN
    assert Backup.objects.count() == 1


def test_dry_run_imports_nothing(uploads, signed, capsys):
    backup = create_backup()
    lose_catalog()
    call_command("syncbackups", "--dry-run")
    assert f"would import {backup.backup_id}" in capsys.readouterr().out
    assert not Backup.objects.exists()


def test_unsigned_sets_need_trust_unsigned_which_is_audited(uploads, settings, capsys):
    backup = create_backup()  # no BACKUP_SIGNING_KEY: written unsigned
    settings.BACKUP_SIGNING_KEY = [KEY]
    lose_catalog()
    report = catalog.scan()
    assert report.imported == [] and "is not signed" in report.skipped[backup.backup_id]
    with pytest.raises(Exception, match="no completed backup yet"):
        get_backup("latest")

    call_command("syncbackups", "--trust-unsigned")
    assert Backup.objects.get(backup_id=backup.backup_id).trigger == Trigger.IMPORT
    event = AuditEvent.objects.filter(action="catalog.scan").latest("id")
    assert event.details["trust_unsigned"] is True and event.details["imported"] == [backup.backup_id]


def test_another_key_is_refused_and_a_rotated_key_still_verifies(uploads, settings):
    settings.BACKUP_SIGNING_KEY = [OLD_KEY]
    backup = create_backup()
    lose_catalog()
    settings.BACKUP_SIGNING_KEY = [KEY]
    reason = catalog.scan().skipped[backup.backup_id]
    assert "signed by another key" in reason and OLD_KEY not in reason
    settings.BACKUP_SIGNING_KEY = [KEY, OLD_KEY]  # rotated: the old key after the new one
    assert catalog.scan().imported == [backup.backup_id]


def test_a_substituted_artifact_with_edited_sums_and_manifest_is_refused(uploads, signed, backup_storage_dir):
    backup = create_backup()
    folder = backup_storage_dir / backup.backup_id
    manifest = json.loads((folder / "metadata.json").read_text())
    (folder / "uploads.tar.zst").write_bytes(b"planted")
    manifest["artifacts"]["uploads.tar.zst"].update(size=7, sha256="0" * 64)
    (folder / "metadata.json").write_text(json.dumps(manifest))
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  uploads.tar.zst\n")
    lose_catalog()

    report = catalog.scan()

    assert report.imported == [] and "changed after signing" in report.skipped[backup.backup_id]
    with pytest.raises(Exception, match="no completed backup yet"):
        start_restore("latest", confirm=True)
    assert (uploads / "doc.txt").read_text() == "original"


@pytest.mark.parametrize("edit, reason", [
    (lambda m: [m], "a JSON array, not an object"),
    (lambda m: {k: v for k, v in m.items() if k != "components"}, "no components object"),
    (lambda m: {**m, "artifacts": None}, "no artifacts object"),
    (lambda m: m["artifacts"]["uploads.tar.zst"].pop("sha256") and m, "no 64-hex-digit sha256"),
    (lambda m: m["artifacts"]["uploads.tar.zst"].update(sha256="abc") or m, "no 64-hex-digit sha256"),
    (lambda m: m["artifacts"]["uploads.tar.zst"].update(file="../../etc/passwd") or m, "not a plain file name"),
    (lambda m: m["artifacts"]["uploads.tar.zst"].update(file="/etc/passwd") or m, "not a plain file name"),
    (lambda m: m["artifacts"]["uploads.tar.zst"].update(component="ghost") or m, "belongs to no component"),
    (lambda m: {**m, "backup_id": "backup_20000101_000000"}, "not the folder it is in"),
])
def test_malformed_manifests_are_refused_with_the_reason(uploads, settings, backup_storage_dir, edit, reason):
    backup = create_backup()
    path = backup_storage_dir / backup.backup_id / "metadata.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    lose_catalog()
    report = catalog.scan(trust_unsigned=True)  # even trusted, a malformed set is never imported
    assert report.imported == [] and reason in report.skipped[backup.backup_id]


def test_sets_only_offsite_are_imported_from_there(pg_stack, signed, settings, moto_endpoint, backup_storage_dir):
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": s3_entry(moto_endpoint, new_bucket(moto_endpoint),
                                                                          "BACKUP_OFFSITE_")}
    backup = create_backup()
    assert backup.offsite_status == OffsiteStatus.VERIFIED, backup.offsite_error
    shutil.rmtree(backup_storage_dir)  # the primary copy burned with the server
    lose_catalog()
    (pg_stack["uploads"] / "a.txt").write_text("lost")

    restore = start_restore("latest", confirm=True)

    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "offsite" in Backup.objects.get(backup_id=backup.backup_id).log
    assert (pg_stack["uploads"] / "a.txt").read_text() != "lost"


def test_hundreds_of_sets_in_s3_are_paged_through(s3_backups, moto_endpoint, uploads, signed):
    backup = create_backup()
    client = s3_client(moto_endpoint)
    for n in range(1005):  # more folders than one S3 listing page holds
        client.put_object(Bucket=s3_backups, Key=f"backup_20000101_000000_{n}/SHA256SUMS", Body=b"")
    lose_catalog()
    report = catalog.scan()
    assert report.imported == [backup.backup_id] and len(report.found) == 1006
    assert sum("still being written" in reason for reason in report.skipped.values()) == 1005
