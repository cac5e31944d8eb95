"""Running the stale-run sweep (services/sweep.py) on every worker, one sweep at a time.

Every django-q2 worker process sweeps when it starts and then every BACKUP_SWEEP_SECONDS from a
side thread, so dead runs are found whichever machines are left. A sweep that finds another one
running (on any machine: locks.exclusive) skips its turn instead of fighting over the same runs;
``manage.py sweepruns`` waits for it instead. After the sweep, queued runs that no worker started
within BACKUP_REQUEUE_SECONDS are handed to the queue again (their task may have been lost with a
machine: the Redis broker hands a task out once), until BACKUP_PENDING_SECONDS fails them."""

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups_app.models import Backup, Restore, RunStatus, Verification
from backups_app.services import locks, queueing
from backups_app.services.sweep import sweep_stale_runs

logger = logging.getLogger("backups_app")


def sweep(wait=False):
    """The number of runs the sweep ended, or None when another sweep was running (``wait``:
    wait for it to finish and sweep then)."""
    with locks.exclusive("sweep", wait=wait) as mine:
        if not mine:
            logger.info("another stale-run sweep is running; this worker skips its turn")
            return None
        swept = sweep_stale_runs()
        requeue_lost()
        return swept


def requeue_lost():
    """Hand again to the queue every queued run still pending BACKUP_REQUEUE_SECONDS after it was
    last queued (and not yet past BACKUP_PENDING_SECONDS, where the sweep fails it)."""
    now = timezone.now()
    waited = now - timedelta(seconds=settings.BACKUP_REQUEUE_SECONDS)
    requeued = []
    for model in (Backup, Restore, Verification):
        for run in model.objects.filter(status=RunStatus.PENDING, queued_at__lt=waited):
            if queueing.requeue(run):
                requeued.append(str(run))
    if requeued:
        logger.warning("queued again (not started within BACKUP_REQUEUE_SECONDS=%s s): %s",
                       settings.BACKUP_REQUEUE_SECONDS, ", ".join(requeued))
    return requeued


def start_periodic():
    """Sweep every BACKUP_SWEEP_SECONDS from a daemon thread of this worker process (0: never)."""
    interval = settings.BACKUP_SWEEP_SECONDS
    if interval <= 0:
        return None

    def loop():
        while not stop.wait(interval):
            try:
                sweep()
            except Exception:  # a database or storage that is down now: the next turn tries again
                logger.exception("the periodic stale-run sweep failed")
            finally:
                connection.close()

    stop = threading.Event()
    thread = threading.Thread(target=loop, name="backups-sweep", daemon=True)
    thread.start()
    return stop
