"""Edges of restore safety: locks always released, no restore during a backup, the way back
(safety backup) protected, dead and never-started runs swept, empty selections refused."""

import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from backups_app.errors import Busy, UnknownComponent
from backups_app.models import Backup, OperationLock, Restore, RunStatus, Trigger
from backups_app.services import backups, locks, progress, restores
from backups_app.services.recorder import run_finished
from backups_app.services.sweep import sweep_stale_runs

pytestmark = pytest.mark.django_db


def test_a_broken_post_hook_never_keeps_the_restore_lock(uploads, settings):
    backup = backups.create_backup()
    settings.BACKUP_HOOKS = {"post_restore": [{"command": ["true"], "timeout": "60"}]}
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED
    assert "hooks post_restore could not run: BACKUP_HOOKS['post_restore']: timeout must be" in restore.log
    assert not OperationLock.objects.exists()
    assert backups.create_backup().status == RunStatus.COMPLETED


def test_no_restore_while_a_backup_runs(uploads):
    backup = backups.create_backup()
    Backup.objects.create(backup_id="backup_20990101_000000", status=RunStatus.IN_PROGRESS)
    with pytest.raises(Busy, match="backup backup_20990101_000000 is running"):
        restores.start_restore(backup.backup_id, confirm=True)
    assert not OperationLock.objects.exists()


def test_the_safety_backup_of_a_running_restore_cannot_be_deleted(uploads):
    backup = backups.create_backup()
    safety = Backup.objects.create(backup_id="backup_20990101_000001", status=RunStatus.COMPLETED,
                                   kind=Backup.Kind.SAFETY)
    Restore.objects.create(restore_id="restore_20990101_000000", backup=backup, source_backup_id=backup.backup_id,
                           status=RunStatus.IN_PROGRESS, safety_backup=safety)
    with pytest.raises(Busy, match="safety backup of a running restore"):
        backups.delete_backup(safety.backup_id)


def dead_restore(uploads, states, restored="original"):
    """A restore of the backup of ``uploads`` ("original") whose worker died with ``states``,
    after its safety backup of "changed", the folder holding ``restored``: the run as the dead
    worker left it (stale heartbeat, lock held) and its safety backup."""
    backup = backups.create_backup()
    (uploads / "doc.txt").write_text("changed")
    safety = backups.create_backup(["uploads"], trigger=Trigger.RESTORE, kind=Backup.Kind.SAFETY)
    (uploads / "doc.txt").write_text(restored)
    plan = restores.plan_restore(backup.backup_id, verify=False)
    restore = Restore.objects.create(restore_id="restore_20990101_000000", backup=backup, plan=plan,
                                     source_backup_id=backup.backup_id, components=["uploads"],
                                     progress={name: progress.entry(state) for name, state in states.items()},
                                     status=RunStatus.IN_PROGRESS, safety_backup=safety,
                                     heartbeat_at=timezone.now() - timedelta(hours=1))
    locks.acquire(locks.RESTORE_LOCK, restore.restore_id)
    return restore, safety


def swept(restore):
    """``restore`` after a sweep, which must have ended it, notified it and freed the lock."""
    finished = []
    run_finished.connect(lambda sender, run, **kw: finished.append(run.pk), weak=False, dispatch_uid="t-dead")
    try:
        assert sweep_stale_runs() == 1
    finally:
        run_finished.disconnect(dispatch_uid="t-dead")
    restore.refresh_from_db()
    assert finished == [restore.pk] and not OperationLock.objects.exists()
    return restore


def test_a_restore_whose_worker_died_mid_store_is_rolled_back_by_the_sweep(uploads):
    restore, safety = dead_restore(uploads, {"uploads": "running"}, restored="half")
    restore = swept(restore)
    assert restore.status == RunStatus.ROLLED_BACK, restore.error
    assert (uploads / "doc.txt").read_text() == "changed"
    assert restore.error.startswith("The worker running this stopped responding")
    assert f"The previous data was put back from safety backup {safety.backup_id}" in restore.error
    assert "The stale-run sweep took this restore over to heal it" in restore.log
    assert f"rolling back uploads from {safety.backup_id}" in restore.log
    assert restore.state_of("uploads") == "rolled_back"
    assert not Backup.objects.get(pk=safety.pk).pinned


def test_a_heal_whose_rollback_fails_names_the_command_and_pins_the_safety_backup(uploads, backup_storage_dir):
    restore, safety = dead_restore(uploads, {"uploads": "running"}, restored="half")
    shutil.rmtree(backup_storage_dir / safety.backup_id)
    restore = swept(restore)
    assert restore.status == RunStatus.FAILED
    assert "Rollback from safety backup" in restore.error and "cannot read the safety backup" in restore.error
    assert f"restore it by hand (manage.py restore {safety.backup_id} --yes)" in restore.error
    assert Backup.objects.get(pk=safety.pk).pinned


def test_a_restore_whose_worker_died_after_the_last_store_is_finished_by_the_sweep(uploads):
    restore, safety = dead_restore(uploads, {"uploads": "done"})
    restore = swept(restore)
    assert restore.status == RunStatus.COMPLETED and restore.error == ""
    assert "every component was restored before the worker died" in restore.log
    assert (uploads / "doc.txt").read_text() == "original"
    assert not Backup.objects.filter(pk=safety.pk).exists()  # deleted, as the restore would have


def test_a_restore_whose_worker_died_before_any_store_changed_nothing(uploads):
    restore, safety = dead_restore(uploads, {"uploads": "pending"}, restored="changed")
    restore = swept(restore)
    assert restore.status == RunStatus.FAILED
    assert "It stopped before changing any data. Nothing was changed." in restore.error
    assert (uploads / "doc.txt").read_text() == "changed"


def test_a_restore_no_worker_ever_started_is_swept_and_frees_the_lock(uploads, settings):
    backup = backups.create_backup()
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    from unittest import mock

    with mock.patch("django_q.tasks.async_task"):  # a broker that accepts and never delivers
        restore = restores.start_restore(backup.backup_id, confirm=True, run_async=True)
    assert restore.status == RunStatus.PENDING and OperationLock.objects.exists()
    assert sweep_stale_runs() == 0  # young: a worker may still take it
    Restore.objects.filter(pk=restore.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert sweep_stale_runs() == 1
    restore.refresh_from_db()
    assert restore.status == RunStatus.FAILED and "No worker started this restore" in restore.error
    assert not OperationLock.objects.exists()


def test_an_empty_selection_is_an_error_not_everything(uploads):
    with pytest.raises(UnknownComponent, match="No component selected"):
        backups.create_backup([])
    backup = backups.create_backup()
    with pytest.raises(UnknownComponent, match="No component selected"):
        restores.start_restore(backup.backup_id, [], confirm=True)
    assert not Restore.objects.exists()


def test_a_failed_rollback_pins_the_safety_backup(uploads, monkeypatch):
    backup = backups.create_backup()
    from backups_app.components.uploads import UploadsComponent

    def broken(self, reader, artifacts, options, log):
        raise OSError("disk gone")

    monkeypatch.setattr(UploadsComponent, "restore", broken)  # the apply and the rollback both fail
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    assert "uploads may hold part of the restored data. The safety backup is kept and pinned" in restore.error
    assert Backup.objects.get(pk=restore.safety_backup_id).pinned


def test_a_rollback_that_leaves_a_store_unlike_before_is_failed_not_rolled_back(uploads, monkeypatch):
    backup = backups.create_backup()
    from backups_app.components.uploads import UploadsComponent

    real, calls = UploadsComponent.restore, []

    def restore_leaving_a_file(self, reader, artifacts, options, log):
        calls.append(reader.backup_id)
        if len(calls) == 1:  # the restore writes, then fails
            (uploads / "half.txt").write_text("half-restored")
            raise OSError("disk gone")
        real(self, reader, artifacts, options, log)  # the rollback "succeeds" but leaves a file behind
        (uploads / "left-over.txt").write_text("not in the safety backup")

    monkeypatch.setattr(UploadsComponent, "restore", restore_leaving_a_file)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    assert "after it, uploads.files 1 before, 2 now" in restore.error
    assert "The safety backup is kept and pinned" in restore.error
    assert Backup.objects.get(pk=restore.safety_backup_id).pinned


def test_a_pinned_backup_goes_only_by_unpin_and_delete(uploads):
    from backups_app.services import retention

    backup = backups.create_backup()
    retention.pin(backup.backup_id)
    with pytest.raises(Busy, match="is pinned or running; it was not deleted"):
        backups.remove_backup(backup)  # what a restore calls for its own safety backup
    with pytest.raises(Busy, match="is pinned"):
        backups.delete_backup(backup.backup_id)
    Backup.objects.filter(pk=backup.pk).update(status=RunStatus.DELETING)  # a deletion cut short, then pinned
    sweep_stale_runs()
    assert Backup.objects.filter(pk=backup.pk).exists()
    Backup.objects.filter(pk=backup.pk).update(status=RunStatus.COMPLETED)
    retention.unpin(backup.backup_id)
    backups.delete_backup(backup.backup_id)
    assert not Backup.objects.filter(pk=backup.pk).exists()
