"""Request and response shapes. Field names follow seed 000 §6 and §9 (backup_id, created_at,
size_mb, components, storage_used_mb, restore_id, started_at, warning, affected, confirm_required)."""

from datetime import datetime
from typing import Any, Optional

from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict, StrictBool

from backups_app import components as registry
from backups_app.archive.ids import BACKUP_ID_RE
from backups_app.models import RunStatus
from backups_app.services import progress

LOG_TAIL_LINES = 50


def _log_tail(run):
    return "\n".join(run.log.splitlines()[-LOG_TAIL_LINES:])


class ErrorOut(Schema):
    error: str = Field(description="Stable code, e.g. not_found, invalid_id, busy, confirmation_required.")
    detail: str = Field(description="What went wrong and how to fix it.")


class HealthOut(Schema):
    status: str = Field(description="ok, or fail when any check failed.")
    checked_at: datetime
    checks: dict[str, Any] = Field(description="Per check (backups, storage, worker, rehearsal): ok and why not.")


class ConfirmationOut(ErrorOut):
    """409 for a restore without ``confirm: true`` (seed 000 §9.1), with live and backup counts."""

    warning: str
    affected: dict[str, Any] = Field(description="Live counts that would be overwritten, as component.item: n.")
    confirm_required: bool
    counts: dict[str, Any] = Field(description="Per component: {live: {...}, backup: {...}}.")
    backup_id: str
    components: list[str]


class Input(BaseModel):
    """Request bodies: a JSON object with known keys only (a typo like "confim" is an error, not
    silently ignored), every field of its own JSON type: ``"true"``, ``1`` or ``"yes"`` are not
    booleans, ``"postgres"`` is not a list."""

    model_config = ConfigDict(extra="forbid", strict=True)


class BackupIn(Input):
    include_uploads: bool = Field(False, description="Without components: include upload folders too.")
    description: str = Field("", max_length=500)
    components: Optional[list[str]] = Field(None, description="Source names; default every configured source.")


class BackupSummary(Schema):
    backup_id: str
    created_at: datetime
    status: RunStatus
    kind: str = Field(description="regular, or safety (taken by a restore).")
    description: str
    size_mb: float
    pinned: bool
    verified: Optional[bool] = Field(description="true when its latest verification passed; false when it failed: "
                                                 "the backup is damaged, do not rely on it; null: never verified.")
    components: dict[str, bool] = Field(description="Every configured source: whether this backup includes it.")

    @staticmethod
    def resolve_components(backup):
        return {name: name in backup.components
                for name in dict.fromkeys([*registry.source_names(), *backup.components])}


class ArtifactOut(Schema):
    name: str
    component: str
    size_bytes: int
    sha256: str


class ProgressOut(Schema):
    """One component's progress in a run (backups_app/services/progress.py)."""

    state: str = Field(description="pending, running, done, failed, skipped, not_run (the run failed before it), "
                                   "rolling_back or rolled_back.")
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    bytes_done: int = Field(description="Bytes streamed so far: a backup counts what it writes before compression, a "
                                        "restore the stored bytes it reads.")
    bytes_total: Optional[int] = Field(description="The bytes expected, when known before it starts (database "
                                                   "size, folder size, the artifacts' sizes); else null.")
    items_done: int = Field(description="Things counted instead of bytes, when items_total is set (Redis: keys).")
    items_total: Optional[int]
    items_unit: Optional[str] = Field(description="What items_* count (keys), or null.")
    elapsed_seconds: Optional[float] = Field(description="Since it started, until it finished.")
    bytes_per_second: Optional[float]
    fraction: Optional[float] = Field(description="0 to 1, of the items when counted, else of the bytes; null when "
                                                  "the total is unknown.")
    eta_seconds: Optional[float] = Field(description="Seconds left at the rate so far; 0 once done, null when "
                                                     "unknown.")


RAN_ON = {"host": Field(description="The machine that ran it (empty until a worker claims it)."),
          "worker": Field(description="The worker that ran it: BACKUP_WORKER_NAME (default the host) and its pid.")}


class BackupDetail(BackupSummary):
    trigger: str
    host: str = RAN_ON["host"]
    worker: str = RAN_ON["worker"]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    size_bytes: int
    progress: dict[str, ProgressOut] = Field(description="Per component, in the backup's order.")
    error: str
    artifacts: list[ArtifactOut]
    counts: dict[str, Any] = Field(description="Per component, as recorded in metadata.json.")
    log_tail: str

    @staticmethod
    def resolve_progress(backup):
        return progress.describe_run(backup)

    @staticmethod
    def resolve_artifacts(backup):
        return list(backup.artifacts.all())

    @staticmethod
    def resolve_counts(backup):
        return {name: facts.get("counts", {}) for name, facts in backup.manifest.get("components", {}).items()}

    @staticmethod
    def resolve_log_tail(backup):
        return _log_tail(backup)


class BackupList(Schema):
    backups: list[BackupSummary]
    total: int
    storage_used_mb: float


class VerifyOut(Schema):
    backup_id: str
    ok: bool
    artifacts: dict[str, Optional[str]] = Field(description="Per artifact: null when its SHA-256 matches, else why.")


class VerificationOut(Schema):
    backup_id: str
    kind: str = Field(description="quick (checksums) or deep (a restore rehearsal, or the check after a restore: "
                                  "trigger restore).")
    status: str
    ok: bool
    trigger: str
    started_at: Optional[str]
    finished_at: Optional[str]
    error: str
    results: dict[str, Any] = Field(
        description="Quick: per artifact {ok, error}. Deep: per component {ok, counts, expected, seconds (the "
                    "restore time: the RTO), probes {collection: {recall, probes, ok, failed}}, recall {collection: "
                    "recall@10}}; after a restore also restore_id, and probe_command {command, exit_status, output, "
                    "ok} when BACKUP_PROBE_COMMAND is set.")


class RestoreIn(Input):
    backup_id: str = Field(pattern=BACKUP_ID_RE.pattern, examples=["backup_20260204_120000"])
    confirm: bool = Field(False, description="Must be true to restore; without it the answer is the 409 warning.")
    components: Optional[list[str]] = Field(None, description="Default: every component in the backup.")
    dry_run: bool = Field(False, description="Only plan: verify checksums and compare counts, change nothing.")
    options: Optional[dict[str, dict[str, Any]]] = Field(None, description="Per component restore options.")


class PlanOut(Schema):
    backup_id: str
    components: list[str]
    artifacts: dict[str, Any]
    counts: dict[str, Any]
    warning: str
    affected: dict[str, Any]
    confirm_required: bool
    problems: list[str]
    targets: dict[str, Any] = Field(default_factory=dict, description="Per component: whether it is restored into "
                                    "the live store, where else or which part (docs/side-by-side.md), and whether a "
                                    "safety backup is taken.")
    ok: StrictBool = Field(description="Every selected artifact matches its checksum.")


class RestoreAccepted(Schema):
    restore_id: str
    status: RunStatus
    started_at: datetime = Field(description="When the worker started it, or when it was accepted if not yet.")

    @staticmethod
    def resolve_started_at(restore):
        return restore.started_at or restore.created_at


class RestoreDetail(RestoreAccepted):
    backup_id: str
    host: str = RAN_ON["host"]
    worker: str = RAN_ON["worker"]
    components: list[str]
    trigger: str
    created_at: datetime
    finished_at: Optional[datetime]
    progress: dict[str, ProgressOut] = Field(description="Per component, in the restore's order.")
    error: str
    safety_backup_id: Optional[str]
    log_tail: str

    @staticmethod
    def resolve_backup_id(restore):
        return restore.source_backup_id

    @staticmethod
    def resolve_progress(restore):
        return progress.describe_run(restore)

    @staticmethod
    def resolve_safety_backup_id(restore):
        return restore.safety_backup.backup_id if restore.safety_backup else None

    @staticmethod
    def resolve_log_tail(restore):
        return _log_tail(restore)
