"""The REST API under /api/system/: parse, authorise, call backups_app/services/, shape the answer.
No logic of its own; errors come from the services and are mapped in api/errors.py."""

from typing import Optional, Union

from ninja import NinjaAPI, Path, Query, Status

from backups_app import permissions
from backups_app.api import errors, monitoring
from backups_app.api.auth import staff_with
from backups_app.api.docs import LocalSwagger
from backups_app.api.schemas import (
    BackupDetail,
    BackupIn,
    BackupList,
    ConfirmationOut,
    ErrorOut,
    PlanOut,
    RestoreAccepted,
    RestoreDetail,
    RestoreIn,
    VerificationOut,
    VerifyOut,
)
from backups_app.archive.ids import ARTIFACT_NAME_RE, BACKUP_ID_RE, RESTORE_ID_RE
from backups_app.downloads import download_response
from backups_app.models import RunStatus, Trigger
from backups_app.services import backups, restores, retention, verification

api = NinjaAPI(
    title="Backup and restore API",
    version="1",
    description="Back up, download, verify and restore the data stack. Staff only: send "
                "`Authorization: Bearer <token>` (create one with `manage.py create_api_token USERNAME`) "
                "or use the admin's session (with the X-CSRFToken header on writes).",
    urls_namespace="system_api",
    parser=errors.JsonBody(),
    docs=LocalSwagger(),
)
errors.install(api)
api.add_router("", monitoring.router)

VIEW, ADD, DELETE = permissions.VIEW_BACKUP, permissions.ADD_BACKUP, permissions.DELETE_BACKUP
CHANGE, DOWNLOAD, RESTORE = permissions.CHANGE_BACKUP, permissions.DOWNLOAD_BACKUP, permissions.RESTORE_BACKUP
VIEW_RESTORE = permissions.VIEW_RESTORE
DENIED = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut, 503: ErrorOut}  # 503: misconfigured or broker down
BODY = {400: ErrorOut, 413: ErrorOut, 415: ErrorOut}  # not JSON, too large, not application/json
BY_ID = {**DENIED, 400: ErrorOut, 404: ErrorOut}
BackupId = Path(pattern=BACKUP_ID_RE.pattern, examples=["backup_20260204_120000"])


@api.post("/backup", auth=staff_with(ADD), response={201: BackupDetail, 202: BackupDetail, 409: ErrorOut,
                                                      500: ErrorOut, **BODY, **DENIED},
          summary="Take a backup")
def create_backup(request, payload: BackupIn, wait: bool = Query(False, description="Run it in this request.")):
    """Queued for the worker (202, status pending); with `?wait=true` it runs in the request and the
    answer is the finished backup (201; 500 with the run's error if it failed)."""
    backup = backups.create_backup(payload.components, description=payload.description, trigger=Trigger.API,
                                   user=request.auth, include_uploads=payload.include_uploads, run_async=not wait,
                                   request=request)
    if not wait:
        return Status(202, backup)
    if backup.status != RunStatus.COMPLETED:
        return Status(500, {"error": "backup_failed", "detail": f"Backup {backup.backup_id} failed: {backup.error}"})
    return Status(201, backup)


@api.get("/backups", auth=staff_with(VIEW), response={200: BackupList, **DENIED}, summary="List backups")
def list_backups(request, limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0, le=2**31),
                 status: Optional[RunStatus] = None):
    """Newest first; `total` counts all matching backups, `storage_used_mb` all stored backups."""
    page, total = backups.list_backups(status, limit, offset)
    return {"backups": page, "total": total, "storage_used_mb": backups.storage_used_mb()}


@api.get("/backup/{backup_id}", auth=staff_with(VIEW), response={200: BackupDetail, **BY_ID},
         summary="One backup: artifacts, checksums, counts, log tail")
def get_backup(request, backup_id: str = BackupId):
    return backups.get_backup(backup_id, completed=False)


TAR = {"application/x-tar": {"schema": {"type": "string", "format": "binary"}},
       "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@api.get("/backup/{backup_id}/download", auth=staff_with(DOWNLOAD), response={**BY_ID, 409: ErrorOut},
         openapi_extra={"responses": {200: {"description": "The set as a tar, or one artifact", "content": TAR}}},
         summary="Download the set as one tar, or one artifact")
def download(request, backup_id: str = BackupId,
             artifact: Optional[str] = Query(None, pattern=ARTIFACT_NAME_RE.pattern, examples=["postgres.dump"])):
    """Streamed (constant memory). After `tar -xf`, `sha256sum -c SHA256SUMS` inside the folder
    checks every artifact. With S3 storage and BACKUP_S3_PRESIGNED_DOWNLOADS, one artifact answers
    with a redirect (302) to a short-lived presigned URL instead."""
    return download_response(request, backup_id, artifact, user=request.auth)


@api.delete("/backup/{backup_id}", auth=staff_with(DELETE), response={204: None, **BY_ID, 409: ErrorOut},
            summary="Delete a backup")
def delete_backup(request, backup_id: str = BackupId):
    """409 while it runs, while a restore uses it, or while it is pinned."""
    backups.delete_backup(backup_id, user=request.auth, request=request)
    return Status(204, None)


@api.post("/backup/{backup_id}/pin", auth=staff_with(CHANGE), response={200: BackupDetail, **BY_ID},
          summary="Pin: keep it whatever the retention policy says")
def pin_backup(request, backup_id: str = BackupId):
    return retention.pin(backup_id, user=request.auth, request=request)


@api.post("/backup/{backup_id}/unpin", auth=staff_with(CHANGE), response={200: BackupDetail, **BY_ID},
          summary="Unpin: let the retention policy decide again")
def unpin_backup(request, backup_id: str = BackupId):
    return retention.unpin(backup_id, user=request.auth, request=request)


@api.post("/backup/{backup_id}/verify", auth=staff_with(CHANGE), response={200: VerifyOut, **BY_ID, 409: ErrorOut},
          summary="Check every artifact against its SHA-256")
def verify_backup(request, backup_id: str = BackupId):
    return verification.quick_check(backup_id, Trigger.API, user=request.auth, request=request)


@api.post("/backup/{backup_id}/rehearse", auth=staff_with(CHANGE),
          response={200: VerificationOut, 202: VerificationOut, **BY_ID, 409: ErrorOut},
          summary="Deep verification: restore each component into a scratch target, compare counts, run the probes")
def rehearse_backup(request, backup_id: str = BackupId,
                    wait: bool = Query(False, description="Run it in this request.")):
    """Queued for the worker (202) unless `?wait=true` (200, the finished verification: per component
    counts, seconds and each collection's probe recall@10)."""
    result = verification.verify(backup_id, deep=True, trigger=Trigger.API, user=request.auth, request=request,
                                 run_async=not wait)
    return Status(200 if wait else 202, verification.as_dict(result))


@api.get("/backup/{backup_id}/verifications", auth=staff_with(VIEW), response={200: list[VerificationOut], **BY_ID},
         summary="The backup's verifications, newest first (rehearsals and checks after restores with probe recall)")
def list_verifications(request, backup_id: str = BackupId, limit: int = Query(20, ge=1, le=200)):
    return [verification.as_dict(v) for v in verification.of_backup(backup_id)[:limit]]


@api.post("/restore", auth=staff_with(RESTORE),
          response={200: PlanOut, 202: RestoreAccepted, **BY_ID, **BODY,
                    409: Union[ConfirmationOut, ErrorOut]},
          summary="Restore from a backup (or plan it with dry_run)")
def start_restore(request, payload: RestoreIn):
    """Without `confirm: true` the answer is 409 with the warning and the live vs backup counts.
    With it the restore is queued (202): a safety backup is taken first and put back if anything
    fails (`rolled_back`). `dry_run: true` only plans (200): checksums verified, counts compared."""
    if payload.dry_run:
        return Status(200, restores.plan_restore(payload.backup_id, payload.components, payload.options))
    restore = restores.start_restore(payload.backup_id, payload.components, payload.options, confirm=payload.confirm,
                                     trigger=Trigger.API, user=request.auth, run_async=True, request=request)
    return Status(202, restore)


@api.get("/restore/status", auth=staff_with(VIEW_RESTORE), response={200: RestoreDetail, 404: ErrorOut, **DENIED},
         summary="The current or latest restore")
def restore_status(request):
    return restores.get_restore()


@api.get("/restore/{restore_id}", auth=staff_with(VIEW_RESTORE), response={200: RestoreDetail, **BY_ID},
         summary="One restore")
def get_restore(request, restore_id: str = Path(pattern=RESTORE_ID_RE.pattern)):
    return restores.get_restore(restore_id)
