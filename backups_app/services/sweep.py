"""The stale-run sweep (every worker start and on schedule): runs whose worker died are failed
and their locks freed; restores that no worker ever started are failed too."""

from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from backups_app.archive.storage import backup_storage, delete_set
from backups_app.models import Backup, OperationLock, Restore, RunStatus, Verification
from backups_app.services.offsite import delete_offsite
from backups_app.services.recorder import RunRecorder


def _died_message(run):
    message = (f"The worker running this stopped responding (last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S} "
               "UTC); it was probably killed or its machine restarted.")
    if isinstance(run, Restore) and run.safety_backup_id:
        # Components may be half-restored: keep the way back and say where it is.
        Backup.objects.filter(pk=run.safety_backup_id).update(pinned=True)
        return (f"{message} Data of {', '.join(run.components)} may be partly restored. Safety backup "
                f"{run.safety_backup.backup_id} holds the data from before and is pinned: restore it, or "
                "restore this backup again.")
    return f"{message} Start the run again."


def sweep_stale_runs():
    """Mark in-progress runs with a stale heartbeat as failed and free their locks; also restores
    queued for longer than BACKUP_PENDING_SECONDS that no worker ever started (they hold the
    restore lock). Returns the number of runs swept."""
    close_old_connections()
    cutoff = timezone.now() - timedelta(seconds=settings.BACKUP_STALE_SECONDS)
    swept = 0
    for model in (Backup, Restore, Verification):
        for run in model.objects.filter(status=RunStatus.IN_PROGRESS, heartbeat_at__lt=cutoff):
            RunRecorder(run).finish(RunStatus.FAILED, _died_message(run))
            if isinstance(run, Backup):
                delete_set(backup_storage(), run.backup_id)
                delete_offsite(run)  # a copy cut short is partial too
            elif isinstance(run, Restore):
                OperationLock.objects.filter(holder=run.restore_id).delete()
            swept += 1
    queued_cutoff = timezone.now() - timedelta(seconds=settings.BACKUP_PENDING_SECONDS)
    for run in Restore.objects.filter(status=RunStatus.PENDING, created_at__lt=queued_cutoff):
        RunRecorder(run).finish(RunStatus.FAILED, f"No worker started this restore within "
                                f"{settings.BACKUP_PENDING_SECONDS} s (is the django-q2 cluster running?); nothing "
                                "was changed. Start it again.")
        OperationLock.objects.filter(holder=run.restore_id).delete()
        swept += 1
    return swept
