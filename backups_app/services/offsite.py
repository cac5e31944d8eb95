"""The offsite copy (seed 002's server-loss scenario): after a backup completes, its stored
files are copied to ``STORAGES["backups_offsite"]`` and re-verified there by streaming every
artifact through its checksum. The result is recorded on the Backup; a failed copy never fails
the backup itself, and its partial files are removed."""

from django.utils import timezone

from backups_app.archive.reader import BackupSetReader, load_manifest, stored_files
from backups_app.archive.storage import backup_storage, copy_file, delete_set, describe, offsite_storage, set_path
from backups_app.errors import BackupError
from backups_app.models import Backup, OffsiteStatus
from backups_app.redaction import mask
from backups_app.services.queueing import submit
from backups_app.services.recorder import RunRecorder


def _record(backup, status, error="", verified_at=None):
    backup.offsite_status, backup.offsite_error, backup.offsite_verified_at = status, mask(error), verified_at
    backup.save(update_fields=["offsite_status", "offsite_error", "offsite_verified_at"])


def copy_offsite(backup, log):
    """Copy the completed set offsite and verify the copy; returns the offsite status. Never
    raises: the outcome is on ``backup.offsite_status`` / ``offsite_error``."""
    target = offsite_storage()
    if target is None:
        return backup.offsite_status
    _record(backup, OffsiteStatus.COPYING)
    source = backup_storage()
    try:
        manifest = load_manifest(source, backup.backup_id)
        for name in stored_files(manifest):  # metadata.json last: it marks the copy complete
            copy_file(source, target, set_path(backup.backup_id, name))
        reader = BackupSetReader(target, backup.backup_id, load_manifest(target, backup.backup_id), copy="offsite")
        problems = [error for error in reader.verify().values() if error]
        if problems:
            raise BackupError("the copy does not match the manifest: " + "; ".join(problems))
    except Exception as exc:
        error = f"Offsite copy to {describe(target)} failed: {exc}"
        try:
            delete_set(target, backup.backup_id)
        except BackupError as cleanup:
            error += f" (its partial files could not be removed either: {cleanup})"
        _record(backup, OffsiteStatus.FAILED, error)
        log(error)
        return backup.offsite_status
    _record(backup, OffsiteStatus.VERIFIED, verified_at=timezone.now())
    log(f"offsite copy in {describe(target)} written and verified")
    return backup.offsite_status


def queue_copy(backup):
    """Copy (again) in the worker, e.g. after the offsite store was down when the backup ran."""
    if offsite_storage() is None:
        raise BackupError("No offsite storage is configured (set BACKUP_OFFSITE_STORAGE, see docs/storage.md).")
    if backup.status != "completed":
        raise BackupError(f"Backup {backup.backup_id} is {backup.status}; only completed backups are copied.")
    submit("backups_app.tasks.copy_offsite", backup.pk, f"offsite {backup.backup_id}")


def run_queued_copy(pk):
    """The worker's side of queue_copy: copy, with the outcome in the backup's log."""
    backup = Backup.objects.get(pk=pk)
    copy_offsite(backup, RunRecorder(backup).log)


def open_offsite_reader(backup):
    """A reader over the verified offsite copy, or None when there is none."""
    target = offsite_storage()
    if target is None or backup.offsite_status != OffsiteStatus.VERIFIED:
        return None
    return BackupSetReader(target, backup.backup_id, load_manifest(target, backup.backup_id), copy="offsite")


def delete_offsite(backup):
    target = offsite_storage()
    if target is not None:
        delete_set(target, backup.backup_id)
