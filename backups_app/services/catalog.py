"""The catalog from storage (seed 002 scenario 4, a new server): the sets in the primary and the
offsite storage that the catalog does not know become ordinary Backup rows (trigger ``import``).

A set is imported only when it proves it was written by this deployment (its metadata.json
signature verifies with BACKUP_SIGNING_KEY, archive/signing.py) and every file its manifest
names is there with the recorded size; the checksums are streamed by every restore plan and by
verification, as for any backup. A folder without metadata.json is a set still being written
(or a failed one) and is left alone.
"""

import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_q.models import Schedule

from backups_app import components
from backups_app.archive import signing
from backups_app.archive.ids import validate_backup_id
from backups_app.archive.reader import stored_files, validate_manifest
from backups_app.archive.storage import (
    STORAGE_FAILURES,
    backup_storage,
    describe,
    offsite_storage,
    open_stream,
    set_path,
    storage_error,
)
from backups_app.archive.writer import MANIFEST_NAME
from backups_app.errors import BackupError
from backups_app.models import Backup, BackupArtifact, OffsiteStatus, RunStatus, Trigger
from backups_app.services import audit, run_ids

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
ALREADY_KNOWN = "already in the catalog"
RETENTION_SETTINGS = ("BACKUP_RETENTION_DAYS", "BACKUP_MAX_COUNT", "BACKUP_SAFETY_RETENTION_DAYS",
                      "BACKUP_RETENTION_TIME_ZONE")


@dataclass
class ScanReport:
    found: list = field(default_factory=list)
    imported: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # {folder: reason}

    def as_dict(self):
        return {"found": self.found, "imported": self.imported, "skipped": self.skipped}


def summary():
    """What a new server should know of the catalog that wrote a set (it goes into the manifest):
    the schedules, the pinned backups, the retention policy and where the sources point. No
    secret: sources as ``describe()`` shows them, no tokens, no users."""
    return {
        "schedules": [{"name": s.name, "func": s.func, "args": s.args, "schedule_type": s.schedule_type,
                       "cron": s.cron, "minutes": s.minutes} for s in Schedule.objects.order_by("name")],
        "pinned": list(Backup.objects.filter(pinned=True).values_list("backup_id", flat=True)),
        "retention": {name: getattr(settings, name) for name in dir(settings) if name in RETENTION_SETTINGS
                      or name.startswith("BACKUP_KEEP_")},
        "sources": {name: component.describe() for name, component in components.all_components().items()},
    }


def _copies():
    copies = [("primary", backup_storage())]
    offsite = offsite_storage()
    return copies + ([("offsite", offsite)] if offsite is not None else [])


def _set_folders(storage):
    """The top-level folders of a backup storage (S3: common prefixes, paged by django-storages)."""
    try:
        folders, _ = storage.listdir("")
    except FileNotFoundError:  # BACKUP_DIR not created yet: nothing stored
        return []
    except STORAGE_FAILURES as exc:
        raise storage_error(exc, storage, "/") from None
    return folders


def _read_small(storage, path):
    """The bytes of a small stored file, or None when it is not there."""
    try:
        with open_stream(storage, path) as stream:
            data = stream.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return None
    except STORAGE_FAILURES as exc:
        raise storage_error(exc, storage, path) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise BackupError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes: not a manifest this app writes.")
    return data


def _examine(storage, backup_id, trust_unsigned):
    """The manifest of one stored copy if it can be imported; raises BackupError saying why not."""
    data = _read_small(storage, set_path(backup_id, MANIFEST_NAME))
    if data is None:
        raise BackupError("no metadata.json: the set is still being written, or its backup failed")
    try:
        signing.check(backup_id, data, _read_small(storage, set_path(backup_id, signing.SIGNATURE_NAME)))
    except signing.UntrustedSet:
        if not trust_unsigned:
            raise
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BackupError(f"metadata.json is not JSON ({exc})") from None
    validate_manifest(backup_id, manifest)
    if manifest.get("backup_id") != backup_id:
        raise BackupError(f"metadata.json names backup {manifest.get('backup_id')!r}, not the folder it is in")
    sizes = {meta.get("file", name): meta["size"] for name, meta in manifest["artifacts"].items()}
    for file in stored_files(manifest):
        try:
            size = storage.size(set_path(backup_id, file))
        except FileNotFoundError:
            raise BackupError(f"{file} is missing") from None
        except STORAGE_FAILURES as exc:
            raise storage_error(exc, storage, set_path(backup_id, file)) from None
        if file in sizes and size != sizes[file]:
            raise BackupError(f"{file} holds {size} bytes, its manifest says {sizes[file]}")
    return manifest


def scan(dry_run=False, trust_unsigned=False, user=None, request=None):
    """Import the stored sets the catalog lacks. Returns a ScanReport (found, imported, skipped
    with the reason); audited as ``catalog.scan``, with ``trust_unsigned`` when it was used."""
    report, where = ScanReport(), {}
    for copy, storage in _copies():
        for folder in _set_folders(storage):
            where.setdefault(folder, []).append((copy, storage))
    known = set(Backup.objects.filter(backup_id__in=list(where)).values_list("backup_id", flat=True))
    for backup_id in sorted(where):
        try:
            validate_backup_id(backup_id)
        except BackupError:
            report.skipped[backup_id] = "not a backup set (the folder name is not a backup id)"
            continue
        report.found.append(backup_id)
        if backup_id in known:
            report.skipped[backup_id] = ALREADY_KNOWN
            continue
        good, reasons = {}, []
        for copy, storage in where[backup_id]:
            try:
                good[copy] = _examine(storage, backup_id, trust_unsigned)
            except BackupError as exc:
                reasons.append(f"{copy} copy ({describe(storage)}): {exc}")
        if not good:
            report.skipped[backup_id] = "; ".join(reasons)
            continue
        if not dry_run:
            _import(backup_id, good, reasons)
        report.imported.append(backup_id)
    if not dry_run:
        audit.record("catalog.scan", user=user, request=request, target="storage",
                     details={"imported": report.imported, "skipped": report.skipped,
                              "trust_unsigned": trust_unsigned})
    return report


def _import(backup_id, copies, problems):
    manifest = copies.get("primary") or copies["offsite"]
    created = parse_datetime(manifest.get("created_at") or "")
    completed = parse_datetime(manifest.get("completed_at") or "")
    notes = [f"imported from the storage scan ({', '.join(sorted(copies))} copy)", *problems]
    with transaction.atomic():
        run_ids.record_issued(backup_id)  # never handed out to a new backup
        backup = Backup.objects.create(
            backup_id=backup_id, kind=manifest.get("kind") or Backup.Kind.REGULAR, trigger=Trigger.IMPORT,
            status=RunStatus.COMPLETED, components=list(manifest["components"]),
            description=str(manifest.get("description") or "")[:500], manifest=manifest,
            size_bytes=sum(m["size"] for m in manifest["artifacts"].values()),
            created_at=created or completed or timezone.now(), started_at=created, finished_at=completed,
            offsite_status=OffsiteStatus.VERIFIED if "offsite" in copies else OffsiteStatus.NONE,
            log="\n".join(notes) + "\n",
        )
        BackupArtifact.objects.bulk_create(
            BackupArtifact(backup=backup, name=name, component=meta["component"], size_bytes=meta["size"],
                           sha256=meta["sha256"]) for name, meta in manifest["artifacts"].items())
    return backup
