"""Backup and restore services: selection, confirmation, locks, verification, stale runs, hooks,
and what happens when things go wrong."""

import json
import os
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from backups_app.errors import (
    Busy,
    ConfirmationRequired,
    InvalidId,
    InvalidOption,
    NotFound,
    UnknownComponent,
)
from backups_app.faults import acting_at
from backups_app.models import Backup, OperationLock, Restore, RunStatus
from backups_app.services import backups, locks, restores, verification
from backups_app.services.sweep import sweep_stale_runs

pytestmark = pytest.mark.django_db


def test_backup_set_layout_and_manifest(service_stack, backup_storage_dir):
    backup = backups.create_backup(description="nightly")
    folder = backup_storage_dir / backup.backup_id
    assert sorted(os.listdir(folder)) == ["SHA256SUMS", "metadata.json", "sqlite_app.db", "uploads.tar.zst"]
    manifest = json.loads((folder / "metadata.json").read_text())
    assert manifest["backup_id"] == backup.backup_id and manifest["status"] == "completed"
    assert manifest["description"] == "nightly"
    assert set(manifest["components"]) == {"uploads", "sqlite"}
    assert manifest["artifacts"]["sqlite_app.db"]["size"] == (folder / "sqlite_app.db").stat().st_size
    assert backup.artifacts.count() == 2
    assert backup.size_bytes == sum(a.size_bytes for a in backup.artifacts.all())


def test_include_uploads_false_leaves_uploads_out(service_stack):
    backup = backups.create_backup(include_uploads=False)
    assert backup.components == ["sqlite"]


def test_unknown_component_is_named(service_stack):
    with pytest.raises(UnknownComponent,
                       match=r"Unknown component\(s\) 'qdrant'. Configured components: uploads, sqlite"):
        backups.create_backup(["qdrant"])
    assert not Backup.objects.exists()


@pytest.mark.parametrize("bad", ["../etc", "backup_2026", "backup_20260204_120000/../../x", "latest/..", ""])
def test_bad_ids_are_refused(service_stack, bad):
    with pytest.raises((InvalidId, NotFound)):
        restores.start_restore(bad, confirm=True)
    with pytest.raises((InvalidId, NotFound)):
        backups.delete_backup(bad)


def test_restore_requires_confirmation_and_shows_counts(service_stack):
    uploads, _ = service_stack
    backup = backups.create_backup()
    (uploads / "f0.txt").unlink()
    with pytest.raises(ConfirmationRequired) as raised:
        restores.start_restore(backup.backup_id)
    plan = raised.value.plan
    assert plan["confirm_required"] is True and plan["warning"] == "This will overwrite existing data"
    assert plan["affected"]["uploads.files"] == 4
    assert plan["counts"]["uploads"]["backup"]["files"] == 5
    assert plan["affected"]["sqlite.app.t"] == 50
    assert not Restore.objects.exists()


def test_the_live_counts_of_a_restore_are_what_its_safety_backup_holds(service_stack):
    """Counted once, by the safety backup (in its snapshot), not first by the plan as well: a file
    added after the plan is in the live counts the run shows, the counts of what was replaced."""
    uploads, _ = service_stack
    backup = backups.create_backup()
    with acting_at("restore.planned", lambda: (uploads / "late.txt").write_text("after the plan")):
        restore = restores.start_restore(backup.backup_id, ["uploads"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.plan["counts"]["uploads"]["live"]["files"] == 6
    assert restore.plan["affected"]["uploads.files"] == 6
    assert restore.plan["counts"]["uploads"]["backup"]["files"] == 5
    assert not (uploads / "late.txt").exists()


def test_corrupted_artifact_is_refused_before_any_change(service_stack, backup_storage_dir):
    uploads, _ = service_stack
    backup = backups.create_backup()
    artifact = backup_storage_dir / backup.backup_id / "sqlite_app.db"
    data = bytearray(artifact.read_bytes())
    data[100] ^= 0xFF
    artifact.write_bytes(bytes(data))
    (uploads / "new.txt").write_text("must survive")

    assert not restores.plan_restore(backup.backup_id)["ok"]
    assert verification.quick_check(backup.backup_id, "cli")["artifacts"]["sqlite_app.db"].startswith(
        "Artifact sqlite_app.db does not match its manifest")
    restore = restores.start_restore(backup.backup_id, confirm=True)

    assert restore.status == RunStatus.FAILED
    assert restore.error.startswith("Restore refused before any change: sqlite_app.db: Artifact sqlite_app.db")
    assert restore.safety_backup is None
    assert (uploads / "new.txt").read_text() == "must survive"
    assert not OperationLock.objects.exists()


def test_restore_refused_while_another_runs_and_backup_refused_too(service_stack):
    backup = backups.create_backup()
    locks.acquire(locks.RESTORE_LOCK, "restore_20260101_000000")
    with pytest.raises(Busy, match="restore_20260101_000000 is running"):
        restores.start_restore(backup.backup_id, confirm=True)
    with pytest.raises(Busy, match="Backup refused"):
        backups.create_backup()
    locks.break_lock(locks.RESTORE_LOCK)  # its holder does not exist: stale
    assert restores.start_restore(backup.backup_id, confirm=True).status == RunStatus.COMPLETED


def test_partial_restore_of_selected_component(service_stack):
    uploads, db = service_stack
    backup = backups.create_backup()
    (uploads / "f1.txt").write_text("changed")
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM t")
    restore = restores.start_restore(backup.backup_id, ["uploads"], confirm=True)
    assert restore.status == RunStatus.COMPLETED
    assert (uploads / "f1.txt").read_text().startswith("file 1")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_restore_options_are_validated_by_the_component(service_stack):
    backup = backups.create_backup()
    with pytest.raises(InvalidOption, match="unknown option\\(s\\) mode; UploadsComponent accepts directory, paths"):
        restores.start_restore(backup.backup_id, ["uploads"], {"uploads": {"mode": "merge"}}, confirm=True)
    with pytest.raises(UnknownComponent, match="not being restored: sqlite"):
        restores.start_restore(backup.backup_id, ["uploads"], {"sqlite": {}}, confirm=True)


def test_component_missing_from_backup_is_named(service_stack, sources, tmp_path):
    backup = backups.create_backup(["sqlite"])
    with pytest.raises(UnknownComponent, match=f"Backup {backup.backup_id} has no component\\(s\\) 'uploads'"):
        restores.start_restore(backup.backup_id, ["uploads"], confirm=True)


def test_failed_backup_removes_partial_files_and_records_why(service_stack, settings, backup_storage_dir):
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "tests.full_storage.FullDiskStorage", "OPTIONS": {"location": str(backup_storage_dir)}}}
    uploads, _ = service_stack
    (uploads / "big.bin").write_bytes(os.urandom(200_000))
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    assert "No space left on device" in backup.error
    assert not (backup_storage_dir / backup.backup_id).exists()
    assert backup.state_of("uploads") == "failed"


def test_stale_runs_are_swept(service_stack, backup_storage_dir):
    backup = backups.create_backup()
    restore = Restore.objects.create(restore_id="restore_20260101_000000", backup=backup,
                                     source_backup_id=backup.backup_id, status=RunStatus.IN_PROGRESS,
                                     heartbeat_at=timezone.now() - timedelta(hours=1))
    locks.acquire(locks.RESTORE_LOCK, restore.restore_id)
    dying = Backup.objects.create(backup_id="backup_20260101_000000", status=RunStatus.IN_PROGRESS,
                                  heartbeat_at=timezone.now() - timedelta(hours=1))
    (backup_storage_dir / dying.backup_id).mkdir()
    (backup_storage_dir / dying.backup_id / "partial.dump").write_bytes(b"x")
    alive = Backup.objects.create(backup_id="backup_20260101_000001", status=RunStatus.IN_PROGRESS,
                                  heartbeat_at=timezone.now())

    assert sweep_stale_runs() == 2

    restore.refresh_from_db()
    dying.refresh_from_db()
    alive.refresh_from_db()
    assert restore.status == dying.status == RunStatus.FAILED
    assert "stopped responding" in restore.error
    assert not OperationLock.objects.exists()
    assert not (backup_storage_dir / dying.backup_id).exists()
    assert alive.status == RunStatus.IN_PROGRESS


def test_hooks_run_around_restore_and_a_failing_pre_hook_changes_nothing(service_stack, settings, tmp_path):
    uploads, _ = service_stack
    backup = backups.create_backup()
    marker = tmp_path / "hook.log"
    append = [sys.executable, "-c", f"import sys; open({str(marker)!r}, 'a').write(sys.argv[1] + '\\n')"]
    settings.BACKUP_HOOKS = {
        "pre_restore": [{"command": append + ["pre"], "on_error": "fail"}],
        "post_restore": [{"command": [sys.executable, "-c", "raise SystemExit(3)"], "on_error": "fail"},
                         {"command": append + ["post"]}],
    }
    assert restores.start_restore(backup.backup_id, confirm=True).status == RunStatus.COMPLETED
    assert marker.read_text() == "pre\npost\n"

    settings.BACKUP_HOOKS = {"pre_restore": [{"command": [sys.executable, "-c", "raise SystemExit(2)"]}],
                             "post_restore": [{"command": append + ["post-after-failure"]}]}
    (uploads / "keep.txt").write_text("keep")
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    assert "pre_restore hook" in restore.error and "exit 2" in restore.error
    assert (uploads / "keep.txt").exists()
    assert marker.read_text().endswith("post-after-failure\n")


def test_safety_backup_kept_when_configured(service_stack, settings):
    settings.BACKUP_KEEP_SAFETY = True
    backup = backups.create_backup()
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.safety_backup.kind == Backup.Kind.SAFETY
    assert restore.safety_backup.status == RunStatus.COMPLETED
    assert backups.get_backup("latest") == backup  # safety backups are never "latest"


def test_delete_removes_files_and_record(service_stack, backup_storage_dir):
    backup = backups.create_backup()
    restores.start_restore(backup.backup_id, confirm=True)
    backups.delete_backup(backup.backup_id)
    assert not (backup_storage_dir / backup.backup_id).exists()
    assert not Backup.objects.filter(backup_id=backup.backup_id).exists()
    assert Restore.objects.get().source_backup_id == backup.backup_id


@pytest.mark.django_db(transaction=True)
def test_heartbeat_thread_keeps_run_fresh(service_stack, settings):
    import time

    from backups_app.services.recorder import heartbeat

    settings.BACKUP_HEARTBEAT_SECONDS = 0.2
    run = Backup.objects.create(backup_id="backup_20260101_000002", status=RunStatus.IN_PROGRESS,
                                heartbeat_at=timezone.now() - timedelta(hours=1))
    with heartbeat(run):
        time.sleep(0.7)
    run.refresh_from_db()
    assert timezone.now() - run.heartbeat_at < timedelta(seconds=5)
