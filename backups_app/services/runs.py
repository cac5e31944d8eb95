"""Recording a run while it executes: log lines, per-component progress, heartbeat, final
status. Also the sweep that fails runs whose worker died."""

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.dispatch import Signal
from django.utils import timezone

from backups_app import components
from backups_app.errors import BackupError
from backups_app.models import Backup, OperationLock, Restore, RunStatus, Verification

logger = logging.getLogger("backups_app")

# Sent with ``run=`` once a run has finished and nothing else will write to it (notifications,
# metrics). Receivers must not raise.
run_finished = Signal()


def submit(task, pk, name):
    """Hand a task to the django-q2 worker. ``Q_CLUSTER["sync"]`` is read here, at use (django-q2
    reads its own settings once at import), so tests and single-process setups can run inline."""
    from django_q.tasks import async_task

    async_task(task, pk, task_name=name, sync=settings.Q_CLUSTER.get("sync", False))


def enqueue(task, run, name):
    """Submit a run; a broker that refuses the task fails the run instead of leaving it pending
    forever."""
    try:
        submit(task, run.pk, name)
    except Exception as exc:
        RunRecorder(run).finish(RunStatus.FAILED, f"Could not hand the run to the task queue: {exc}")
        raise BackupError(f"Could not queue {name}: {exc}. Is the django-q2 broker reachable?") from exc


# Settings that hold secrets outside the sources: storage keys, mail, webhook.
SECRET_SETTINGS = ("BACKUP_S3_SECRET_ACCESS_KEY", "BACKUP_OFFSITE_S3_SECRET_ACCESS_KEY", "EMAIL_HOST_PASSWORD",
                   "BACKUP_NOTIFY_WEBHOOK")


def known_secrets():
    secrets = []
    for component in components.all_components().values():
        secrets += [str(component.config[k]) for k in component.secret_options if component.config.get(k)]
    secrets += [str(getattr(settings, name)) for name in SECRET_SETTINGS if getattr(settings, name, "")]
    for storage in settings.STORAGES.values():
        secrets += [str(v) for k, v in storage.get("OPTIONS", {}).items() if "secret" in k and v]
    app_db_password = settings.DATABASES["default"].get("PASSWORD")
    return secrets + ([app_db_password] if app_db_password else [])


def mask(text):
    """Replace configured secret values (also as Python shows them escaped in reprs); a safety
    net behind messages that never include them. Applied wherever error text is stored or shown."""
    for secret in known_secrets():
        for form in {secret, repr(secret)[1:-1]}:
            if len(form) >= 4:
                text = text.replace(form, "***")
    return text


class RunRecorder:
    def __init__(self, run):
        self.run = run

    def log(self, text):
        line = f"{timezone.now():%Y-%m-%d %H:%M:%S} {mask(str(text))}"
        logger.info("%s: %s", self.run, line)
        self.run.log += line + "\n"
        self.run.heartbeat_at = timezone.now()
        self.run.save(update_fields=["log", "heartbeat_at"])

    def progress(self, component, state):
        self.run.progress = {**self.run.progress, component: state}
        self.run.save(update_fields=["progress"])

    def start(self):
        self.run.status = RunStatus.IN_PROGRESS
        self.run.started_at = self.run.heartbeat_at = timezone.now()
        self.run.progress = {name: "pending" for name in self.run.components}
        self.run.save(update_fields=["status", "started_at", "heartbeat_at", "progress"])

    def finish(self, status, error=""):
        self.run.status = status
        self.run.error = mask(error)
        self.run.finished_at = timezone.now()
        self.run.save(update_fields=["status", "error", "finished_at"])
        if error:
            self.log(f"ERROR: {error}")
        self.log(f"finished: {status}")


@contextmanager
def heartbeat(run):
    """Keep ``heartbeat_at`` fresh from a side thread while the run's own thread is busy in a
    long dump; a run that stops beating is swept as dead."""
    stop = threading.Event()
    interval = settings.BACKUP_HEARTBEAT_SECONDS

    def beat():
        try:
            while not stop.wait(interval):
                try:
                    type(run).objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
                except Exception:  # a busy database must not kill the run; the next beat retries
                    logger.warning("heartbeat for %s failed", run, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, daemon=True)
    if interval > 0:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()


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
    from backups_app.archive.storage import backup_storage, delete_set
    from backups_app.services.offsite import delete_offsite

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
            run_finished.send(sender=model, run=run)
            swept += 1
    queued_cutoff = timezone.now() - timedelta(seconds=settings.BACKUP_PENDING_SECONDS)
    for run in Restore.objects.filter(status=RunStatus.PENDING, created_at__lt=queued_cutoff):
        RunRecorder(run).finish(RunStatus.FAILED, f"No worker started this restore within "
                                f"{settings.BACKUP_PENDING_SECONDS} s (is the django-q2 cluster running?); nothing "
                                "was changed. Start it again.")
        OperationLock.objects.filter(holder=run.restore_id).delete()
        run_finished.send(sender=Restore, run=run)
        swept += 1
    return swept
