"""Taking, listing, verifying and deleting backups. Admin, API, commands and tasks call these."""

import platform

import django
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from backups_app import components
from backups_app.archive import compression
from backups_app.archive.ids import validate_backup_id
from backups_app.archive.reader import BackupSetReader, load_manifest, stored_files
from backups_app.archive.storage import backup_storage, delete_set, is_s3, presigned_url, set_path
from backups_app.archive.tarstream import stream_file, stream_set_tar
from backups_app.archive.writer import BackupSetWriter
from backups_app.errors import BackupError, Busy, NotCompleted, NotFound
from backups_app.faults import fault_point
from backups_app.models import Backup, BackupArtifact, Restore, RunStatus, Trigger
from backups_app.services import audit, catalog, hooks, locks, offsite, parallel, run_ids
from backups_app.services.queueing import enqueue
from backups_app.services.recorder import error_text, execute

FORMAT_VERSION = 1
#: The end of a failed backup's error while its partial files are still in storage (it was down):
#: the sweep removes them once the storage answers again, and says so in place of this.
FILES_LEFT = ("Its partial files could not be removed yet (the storage did not answer); deleting this failed "
              "backup removes them once the storage is reachable again, and so does the stale-run sweep.")
FILES_REMOVED = "Its partial files were removed later, once the storage was reachable again."


def select_components(names=None, include_uploads=None):
    """The user's selection, validated. No names: every configured source, where
    ``include_uploads=False`` leaves out upload folders (the seed's API default)."""
    selected = components.resolve_names(names)
    if names is None and include_uploads is False:
        selected = [n for n in selected if not components.get_component(n).holds_uploads]
    if not selected:
        raise BackupError("Nothing to back up: no component selected or configured (see BACKUP_SOURCES).")
    return selected


def create_backup(names=None, description="", trigger=Trigger.CLI, user=None, include_uploads=None,
                  kind=Backup.Kind.REGULAR, run_async=False, request=None, audit_details=None):
    """Record a pending backup and run it now (or enqueue it). Returns the Backup. A regular
    backup is audited as ``backup.create`` with ``user``/``request`` (who asked, from where)."""
    selected = select_components(names, include_uploads)
    if kind == Backup.Kind.REGULAR:
        locks.ensure_free(locks.RESTORE_LOCK, "Backup")
    with transaction.atomic():
        backup = Backup.objects.create(
            backup_id=run_ids.allocate("backup"),
            components=selected, description=description[:500], trigger=trigger, created_by=user, kind=kind,
        )
    if kind == Backup.Kind.REGULAR:
        audit.record("backup.create", user=user, request=request, target=backup.backup_id,
                     details={"trigger": trigger, **(audit_details or {})})
    if run_async:
        enqueue("backups_app.tasks.run_backup", backup, backup.backup_id)
    else:
        run_backup(backup.pk)
        backup.refresh_from_db()
    return backup


def run_backup(pk):
    return execute(Backup, pk, _take_backup, admit=_admit)


def _admit(backup):
    """No regular backup starts while a restore holds the lock (checked as it is claimed): it
    would capture half-restored data. A restore's own safety backup runs under its lock."""
    if backup.kind == Backup.Kind.REGULAR:
        locks.ensure_free(locks.RESTORE_LOCK, "Backup")


def _take_backup(backup, recorder):
    storage = backup_storage()
    writer = BackupSetWriter(storage, backup.backup_id)
    regular = backup.kind == Backup.Kind.REGULAR
    writer.allow_missing = not regular
    try:
        if regular:
            hooks.run_hooks("pre_backup", recorder)
        recorder.log(f"backing up {', '.join(backup.components)} into {backup.backup_id}")
        facts = parallel.back_up_components(backup, writer, recorder)
        fault_point("backup.before_manifest")
        # Logged first: a backup the sweep took over (and whose files it removed) stops here.
        recorder.log("writing SHA256SUMS and metadata.json")
        manifest = writer.finish(_manifest(backup, facts))
        _record_completion(backup, manifest)
        if regular:
            offsite.copy_offsite(backup, recorder.log)
    except Exception as exc:
        try:
            delete_set(storage, backup.backup_id)
        except BackupError as cleanup:
            recorder.log(f"cleanup failed: {cleanup}")
            raise BackupError(f"{error_text(exc).rstrip('.')}. {FILES_LEFT}") from exc
        raise
    finally:
        if regular:
            hooks.run_hooks("post_backup", recorder)


def _manifest(backup, facts):
    return {
        "format": FORMAT_VERSION,
        "backup_id": backup.backup_id,
        "kind": backup.kind,
        "created_at": backup.created_at.isoformat(),
        "completed_at": timezone.now().isoformat(),
        "description": backup.description,
        "trigger": backup.trigger,
        "status": RunStatus.COMPLETED,
        "components": facts,
        "compression": compression.method(),
        "tools": {"python": platform.python_version(), "django": django.get_version()},
        "catalog": catalog.summary(),
    }


def _record_completion(backup, manifest):
    with transaction.atomic():
        for name, meta in manifest["artifacts"].items():
            BackupArtifact.objects.create(backup=backup, name=name, component=meta["component"],
                                          size_bytes=meta["size"], sha256=meta["sha256"])
        backup.manifest = manifest
        backup.size_bytes = sum(m["size"] for m in manifest["artifacts"].values())
        backup.save(update_fields=["manifest", "size_bytes"])


def find_run(model, id_field, run_id, validate):
    """The run of ``model`` whose ``id_field`` is ``run_id`` (validated first), or NotFound."""
    validate(run_id)
    run = model.objects.filter(**{id_field: run_id}).first()
    if run is None:
        raise NotFound(f"{model._meta.verbose_name.capitalize()} {run_id} does not exist.")
    return run


def get_backup(backup_id, completed=True):
    """A backup by id, or the newest completed regular backup for ``latest``."""
    if backup_id == "latest":
        newest = Backup.objects.filter(status=RunStatus.COMPLETED, kind=Backup.Kind.REGULAR)
        if not newest.exists():
            catalog.scan()  # a new server's catalog is empty: the signed sets in storage are its backups
        backup = newest.first()
        if backup is None:
            raise NotFound("There is no completed backup yet (none in the catalog, and no signed set in the "
                           "storage; manage.py syncbackups --dry-run tells what it found).")
        return backup
    backup = find_run(Backup, "backup_id", backup_id, validate_backup_id)
    if completed and backup.status != RunStatus.COMPLETED:
        raise NotCompleted(f"Backup {backup_id} is {backup.status}, not completed; only completed backups can be used.")
    return backup


def list_backups(status=None, limit=None, offset=0):
    """``(page, total)``: backups newest first, optionally of one status, with ``verified``."""
    backups = Backup.objects.with_last_check()
    if status:
        backups = backups.filter(status=status)
    end = offset + limit if limit is not None else None
    return list(backups[offset:end]), backups.count()


def storage_used_mb():
    """What the recorded backups occupy in storage (sum of artifact sizes), in MiB like ``size_mb``."""
    used = Backup.objects.aggregate(total=models.Sum("size_bytes"))["total"] or 0
    return round(used / (1024 * 1024), 2)


def _stored_file(backup, artifact):
    """The stored file an artifact (or SHA256SUMS / metadata.json) of the set is kept in: encrypted
    artifacts are asked for by their name and sent as ``<name>.age``."""
    files = stored_files(backup.manifest)
    file = backup.manifest.get("artifacts", {}).get(artifact, {}).get("file", artifact)
    if file not in files:  # only names of the set: no path reaches storage
        raise NotFound(f"Backup {backup.backup_id} has no artifact {artifact!r}; it has {', '.join(files)}.")
    return file


def _audit_download(backup, artifact, presigned, user, request):
    audit.record("backup.download", user=user, request=request, target=backup.backup_id,
                 details={"artifact": artifact, "presigned": presigned})


def download(backup_id, artifact=None, user=None, request=None):
    """``(iterator, content_length, filename)``: the whole set as one streamed tar, or one stored
    file of it (an artifact, SHA256SUMS or metadata.json) as it is (still encrypted, if it is).
    A set whose stored metadata.json is malformed or differs from the catalog is refused."""
    backup = get_backup(backup_id)
    open_reader(backup, copy="primary").check_catalog()
    storage = backup_storage()
    try:
        if artifact is None:
            iterator, length = stream_set_tar(storage, backup.backup_id, stored_files(backup.manifest),
                                              mtime=backup.finished_at.timestamp())
            filename = f"{backup.backup_id}.tar"
        else:
            filename = _stored_file(backup, artifact)
            path = set_path(backup.backup_id, filename)
            length = storage.size(path)
            iterator = stream_file(storage, path, length)
        _audit_download(backup, artifact, False, user, request)
        return iterator, length, filename
    except FileNotFoundError:
        raise NotFound(f"A file of backup {backup.backup_id} is missing from storage; verify the backup "
                       "and take a new one.") from None


def download_url(backup_id, artifact, user=None, request=None):
    """A short-lived presigned URL for one stored file of the set when the primary storage is S3
    and BACKUP_S3_PRESIGNED_DOWNLOADS is on; None means: stream it through the app (``download``)."""
    backup = get_backup(backup_id)
    storage = backup_storage()
    if not (settings.BACKUP_S3_PRESIGNED_DOWNLOADS and is_s3(storage)):
        return None
    open_reader(backup, copy="primary").check_catalog()
    file = _stored_file(backup, artifact)
    url = presigned_url(storage, set_path(backup.backup_id, file), settings.BACKUP_S3_PRESIGNED_EXPIRY, file)
    _audit_download(backup, artifact, True, user, request)
    return url


def open_reader(backup, copy=None):
    """A reader over the stored set whose every artifact must match both its checksum and the catalog's
    record of it (the manifest the database kept when the backup was taken): a set whose files,
    SHA256SUMS and metadata.json were all replaced is still caught. ``copy`` picks "primary" or
    "offsite"; by default the primary copy, or the verified offsite copy when the primary one cannot
    be read (``reader.copy`` tells which)."""
    reader = _stored_reader(backup, copy)
    artifacts = backup.manifest.get("artifacts")
    reader.catalog = artifacts if isinstance(artifacts, dict) else None
    return reader


def _stored_reader(backup, copy):
    if copy == "offsite":
        reader = offsite.open_offsite_reader(backup)
        if reader is None:
            raise NotFound(f"Backup {backup.backup_id} has no verified offsite copy.")
        return reader
    storage = backup_storage()
    try:
        return BackupSetReader(storage, backup.backup_id, load_manifest(storage, backup.backup_id))
    except BackupError as primary_error:
        if copy == "primary":
            raise
        try:
            reader = offsite.open_offsite_reader(backup)
        except BackupError as exc:
            raise BackupError(f"{primary_error} The offsite copy cannot be read either: {exc}") from exc
        if reader is None:
            raise
        return reader


def delete_backup(backup_id, user=None, request=None, action="backup.delete", details=None):
    """Delete a finished, unpinned backup that no restore uses; audited as ``action``."""
    backup = get_backup(backup_id, completed=False)
    with locks.claiming():  # no restore of it can start between these checks and the marking
        backup.refresh_from_db()
        if backup.pinned:
            raise Busy(f"Backup {backup.backup_id} is pinned; unpin it first if it really should go.")
        if backup.is_active:
            raise Busy(f"Backup {backup.backup_id} is {backup.status}; wait for it to finish before deleting it.")
        in_use = Restore.objects.filter(status__in=[RunStatus.PENDING, RunStatus.IN_PROGRESS])
        if in_use.filter(safety_backup=backup).exists():
            raise Busy(f"Backup {backup.backup_id} is the safety backup of a running restore; it is its way back.")
        if in_use.filter(backup=backup).exists():
            raise Busy(f"Backup {backup.backup_id} is being restored; delete it after the restore finishes.")
        _mark_deleting(backup)
    remove_backup(backup)
    audit.record(action, user=user, request=request, target=backup.backup_id, details=details)


def remove_backup(backup):
    """Delete the stored set (both copies) and the record, without the checks of delete_backup
    (for a restore removing its own safety backup once it succeeded). Marked ``deleting`` first,
    so it is never offered again (latest, restore source, safety backup); a deletion cut short is
    finished by the sweep. A pinned backup is refused: only unpinning and deleting removes it."""
    _mark_deleting(backup)
    offsite.delete_offsite(backup)
    delete_set(backup_storage(), backup.backup_id)
    fault_point("delete.files_removed")
    backup.delete()  # restores keep their history through source_backup_id


def _mark_deleting(backup):
    marked = Backup.objects.filter(pk=backup.pk, pinned=False).exclude(status__in=[
        RunStatus.PENDING, RunStatus.IN_PROGRESS]).update(status=RunStatus.DELETING)
    if not marked:
        raise Busy(f"Backup {backup.backup_id} is pinned or running; it was not deleted.")
    backup.status = RunStatus.DELETING
