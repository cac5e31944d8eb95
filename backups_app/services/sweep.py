"""The stale-run sweep (every worker start and on schedule): backups and verifications whose
worker died are failed, restores whose worker died are healed (their stores put back from the
safety backup, or the restore finished when it provably was: services.restores.heal), runs no
worker started within BACKUP_PENDING_SECONDS are failed, deletions cut short are finished, locks
whose holder is not an active run are freed, and folder swaps a killed restore left half done are
put right. The sweep takes each run over first (a new lease), so a worker that was only paused
cannot overwrite its verdict."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from backups_app.archive.safetar import recover_swaps
from backups_app.archive.storage import backup_storage, delete_set
from backups_app.errors import BackupError
from backups_app.models import Backup, Restore, RunStatus, Verification
from backups_app.services import locks
from backups_app.services.backups import FILES_LEFT, FILES_REMOVED, remove_backup
from backups_app.services.offsite import delete_offsite
from backups_app.services.recorder import LeaseLost, take_over
from backups_app.services.restores import heal

logger = logging.getLogger("backups_app")


def _died(run):
    return (f"The worker running this stopped responding (last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S} "
            "UTC); it was probably killed, paused or its machine restarted.")


def _died_message(run):
    return f"{_died(run)} Start the run again."


def _heal(run, stale):
    """Take the dead restore ``run`` over and heal it (services.restores.heal)."""
    recorder = take_over(run, heartbeat_at__lt=stale)
    if recorder is None:
        return 0
    try:
        heal(run, recorder, _died(run))
    except LeaseLost as exc:  # another sweep took it over meanwhile: it heals it
        logger.error("%s", exc)
    return 1


def _never_started_message(run):
    return (f"No worker started this {run._meta.verbose_name} within BACKUP_PENDING_SECONDS "
            f"({settings.BACKUP_PENDING_SECONDS} s): is the django-q2 cluster running, or was the process killed "
            "before it began? Nothing was changed. Start it again.")


def _fail(run, message, **still):
    """Take ``run`` over if it is still as found (``still``), clean up after it, fail it."""
    recorder = take_over(run, **still)
    if recorder is None:
        return 0
    if isinstance(run, Backup) and run.status == RunStatus.IN_PROGRESS:
        delete_set(backup_storage(), run.backup_id)
        delete_offsite(run)  # a copy cut short is partial too
    recorder.finish(RunStatus.FAILED, message(run))
    return 1


def _remove_files_left():
    """Remove the partial files of failed backups whose storage was down when they failed."""
    done = 0
    for backup in Backup.objects.filter(status=RunStatus.FAILED, error__endswith=FILES_LEFT):
        try:
            delete_set(backup_storage(), backup.backup_id)
        except BackupError as exc:  # still down: the next sweep tries again
            logger.warning("could not remove the partial files of %s yet: %s", backup, exc)
            continue
        Backup.objects.filter(pk=backup.pk).update(error=backup.error.replace(FILES_LEFT, FILES_REMOVED))
        done += 1
    return done


def _finish_deletions():
    done = 0
    for backup in Backup.objects.filter(status=RunStatus.DELETING):
        try:
            remove_backup(backup)
            done += 1
        except BackupError as exc:  # storage still down: the next sweep tries again
            logger.warning("could not finish deleting %s: %s", backup, exc)
    return done


def sweep_stale_runs():
    """Returns the number of runs failed and deletions finished."""
    close_old_connections()
    now = timezone.now()
    stale = now - timedelta(seconds=settings.BACKUP_STALE_SECONDS)
    queued = now - timedelta(seconds=settings.BACKUP_PENDING_SECONDS)
    swept = 0
    for model in (Backup, Restore, Verification):
        for run in model.objects.filter(status=RunStatus.IN_PROGRESS, heartbeat_at__lt=stale):
            if model is Restore:
                swept += _heal(run, stale)
            else:
                swept += _fail(run, _died_message, heartbeat_at__lt=stale)
        for run in model.objects.filter(status=RunStatus.PENDING, created_at__lt=queued):
            swept += _fail(run, _never_started_message)
    swept += _finish_deletions()
    _remove_files_left()
    if locks.free_stale():
        logger.warning("freed locks whose holder is not an active run")
    if not Restore.objects.filter(status=RunStatus.IN_PROGRESS).exists():
        for note in recover_swaps():  # left by a restore swept earlier, or one killed outside a run
            logger.warning("%s", note)
    return swept
