"""Recording a run while it executes, and the one lifecycle every run goes through.

``execute(model, pk, body)`` is what the worker (or the request, for synchronous runs) calls for
a Backup, Restore or Verification: it skips a run that is no longer pending, starts it, keeps its
heartbeat fresh while ``body(run, recorder)`` works, and finishes it. ``RunRecorder.finish()``
sends ``run_finished``, so every way a run ends (done, failed, rolled back, refused by the broker,
swept as dead) reaches metrics and notifications."""

import logging
import threading
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.dispatch import Signal
from django.utils import timezone

from backups_app.errors import BackupError
from backups_app.models import RunStatus
from backups_app.redaction import mask

logger = logging.getLogger("backups_app")

# Sent with ``run=`` once a run has finished (notifications, metrics). Receivers must not raise.
run_finished = Signal()


def error_text(exc):
    """The readable text for an error stored on a run: our own messages as they are, anything
    else with its type; secrets masked."""
    return mask(str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}")


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
        run_finished.send(sender=type(self.run), run=self.run)


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


def execute(model, pk, body):
    """Run the recorded run ``pk`` once. ``body(run, recorder)`` does the work; when it returns
    the run is completed, when it raises the run is failed with the error's text, unless the body
    finished the run itself (rolled back, failed with a more precise message). A run that is not
    pending (delivered twice, already swept) is returned untouched."""
    run = model.objects.get(pk=pk)
    if run.status != RunStatus.PENDING:
        return run
    recorder = RunRecorder(run)
    recorder.start()
    try:
        with heartbeat(run):
            body(run, recorder)
    except Exception as exc:
        if run.is_active:
            recorder.finish(RunStatus.FAILED, error_text(exc))
    else:
        if run.is_active:
            recorder.finish(RunStatus.COMPLETED)
    return run
