"""Recording a run while it executes, and the one lifecycle every run goes through.

``execute(model, pk, body)`` is what the worker (or the request, for synchronous runs) calls for
a Backup, Restore or Verification: it claims a pending run (and skips one that is not pending any
more), keeps its heartbeat fresh while ``body(run, recorder)`` works, and finishes it.
``RunRecorder.finish()`` sends ``run_finished``, so every way a run ends (done, failed, rolled
back, refused by the broker, swept as dead) reaches metrics and notifications.

Fencing: claiming writes a new ``lease`` on the run, and every later change is a compare-and-set
on the status and lease the recorder last wrote. The sweep takes a dead run over the same way
(``take_over``), so a worker that was only paused finds its lease gone at its next heartbeat or
change and stops (``LeaseLost``) without touching the run or the storage."""

import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from backups_app.errors import BackupError
from backups_app.faults import fault_point
from backups_app.models import OperationLock, RunStatus
from backups_app.redaction import mask
from backups_app.services import locks, progress, workers

logger = logging.getLogger("backups_app")

# Sent with ``run=`` once a run has finished (notifications, metrics). Receivers must not raise.
run_finished = Signal()


class LeaseLost(BaseException):
    """This worker no longer owns the run (the sweep took it over while the worker was paused).
    Not an Exception: no handler for ordinary errors may run on the sweep's behalf (deleting
    files, rolling back, finishing the run)."""


#: Modules whose errors are a store's, a server's or a client library's own words (a server that
#: went away, a full disk): shown as they say it, without the Python class name.
CLIENT_LIBRARIES = ("psycopg", "redis", "botocore", "boto3", "s3transfer", "urllib3", "httpx", "httpcore",
                    "qdrant_client", "chromadb", "sqlite3", "zstandard")


def error_text(exc):
    """The readable text for an error stored on a run: our own messages as they are, a system
    error as the system says it with the path, a store client's error in its own words, anything
    else (a bug) with its type; secrets masked."""
    if isinstance(exc, BackupError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        text = f"{exc.strerror}: {paths}" if paths else exc.strerror
    elif str(exc).strip() and type(exc).__module__.split(".")[0].lstrip("_") in CLIENT_LIBRARIES:
        text = str(exc).strip()
    else:
        text = f"{type(exc).__name__}: {exc}"
    return mask(text)


def store_error(name, exc):
    """``error_text(exc)`` for a failure of store ``name``, led by the store's name unless it says it."""
    text = error_text(exc)
    return text if text.startswith((f"{name}:", f"{name} ")) else f"{name}: {text}"


class RunRecorder:
    #: Streaming components' counts reach the database at most this often per run (services/progress.py).
    REPORT_SECONDS = 1.0

    def __init__(self, run):
        self.run = run
        self._reported_at = float("-inf")  # time.monotonic() of the last progress write
        # Meters may count in a helper thread (a pipe's feeder), and the components of a parallel
        # backup log and move from threads of their own; only the run's own thread writes (flush).
        self._thread = threading.get_ident()
        self._lock = threading.Lock()  # guards run.progress being replaced, and the lines below
        self._said = []  # log lines of other threads, not written yet
        self._moved = False  # another thread changed a component's state since the last write
        self._lost = None  # the LeaseLost the run's thread met: other threads raise it at their next line

    def _save(self, **fields):
        """Write ``fields`` if the run is still in the status and lease this recorder last saw."""
        run = self.run
        if not type(run).objects.filter(pk=run.pk, status=run.status, lease=run.lease).update(**fields):
            self._lost = LeaseLost(f"{run} was taken over (swept as dead: no heartbeat for BACKUP_STALE_SECONDS) or "
                                   "changed by someone else; this worker stops without touching it or its files.")
            raise self._lost
        for name, value in fields.items():
            setattr(run, name, value)

    def _line(self, text):
        line = f"{timezone.now():%Y-%m-%d %H:%M:%S} {mask(str(text))}"
        logger.info("%s: %s", self.run, line)
        return line + "\n"

    def _own_thread(self):
        return threading.get_ident() == self._thread

    def log(self, text):
        """Append a line to the run's log; raises LeaseLost if the run is no longer this worker's,
        which is why steps that change storage log first. From another thread the line waits for
        the run's thread to write it (``flush``)."""
        line = self._line(text)
        if self._own_thread():
            self._write_log(line)
            return
        if self._lost:
            raise LeaseLost(str(self._lost))
        with self._lock:
            self._said.append(line)

    def _write_log(self, line=""):
        with self._lock:
            said, self._said = "".join(self._said), []
        self._save(log=self.run.log + said + line, heartbeat_at=timezone.now())

    def progress(self, component, state, **fields):
        """Record that ``component`` is now in ``state``, with ``fields`` of its entry (``bytes_total``,
        ``items_total``, ``items_unit``); see services/progress.py. Written at once from the run's
        thread, at its next ``flush`` from another."""
        with self._lock:
            self.run.progress = {**self.run.progress,
                                 component: progress.moved(self.run.progress.get(component), state, **fields)}
            self._moved = not self._own_thread()
        if self._own_thread():
            self._write_progress()

    def meter(self, component):
        """The counter the backup writer or reader reports ``component``'s streamed bytes to."""
        return progress.Meter(self, component)

    def report(self):
        """Write the counts meters added, unless progress was written less than REPORT_SECONDS ago."""
        due = time.monotonic() - self._reported_at >= self.REPORT_SECONDS
        if due and self._own_thread():
            self._write_progress()

    def flush(self):
        """From the run's thread while other threads work for it: write the lines they logged, the
        states they moved to, and (at most every REPORT_SECONDS) what their meters counted."""
        if self._said:
            self._write_log()
        if self._moved:
            self._write_progress()
        self.report()

    def _write_progress(self):
        with self._lock:  # no other thread replaces run.progress between this write and _save's setattr
            self._moved = False
            self._save(progress=self.run.progress)
        self._reported_at = time.monotonic()

    def save(self, *names):
        """Save fields the body set on the run (plan, results, ...), fenced like every change."""
        self._save(**{name: getattr(self.run, name) for name in names})

    def start(self, admit=None):
        """Claim the pending run with a new lease, recording this host and worker; False if it is
        not pending any more. ``admit(run)`` may refuse (raise BackupError): it runs in the same
        atomic step as the claim (locks.claiming), so what it checks cannot change in between."""
        run, now = self.run, timezone.now()
        fields = {"status": RunStatus.IN_PROGRESS, "lease": uuid.uuid4().hex, "started_at": now,
                  "heartbeat_at": now, "progress": {name: progress.entry() for name in run.components},
                  **workers.identity()}
        if run.status != RunStatus.PENDING:
            return False
        with locks.claiming():
            if admit is not None:
                admit(run)
            fault_point(f"{run._meta.model_name}.claiming")  # inside the claim: the tests pause here
            if not type(run).objects.filter(pk=run.pk, status=RunStatus.PENDING).update(**fields):
                return False
        for name, value in fields.items():
            setattr(run, name, value)
        return True

    def finish(self, status, error=""):
        """End the run, and free the lock it holds in the same transaction. A run that did not
        complete shows which components never ran (services/progress.py ``ended``)."""
        fault_point(f"{self.run._meta.model_name}.finish")
        lines = (self._line(f"ERROR: {error}") if error else "") + self._line(f"finished: {status}")
        entries = self.run.progress if status == RunStatus.COMPLETED else progress.ended(self.run)
        with transaction.atomic():
            self._save(status=status, error=mask(error), finished_at=timezone.now(), log=self.run.log + lines,
                       progress=entries)
            if self.run.lock_holder:
                OperationLock.objects.filter(holder=self.run.lock_holder).delete()
        run_finished.send(sender=type(self.run), run=self.run)


def take_over(run, **still):
    """Take ``run`` from whoever owns it, if it is still as the caller saw it (its status and
    lease, plus ``still``: e.g. its heartbeat still stale). Returns a recorder that owns it, or
    None when it changed meanwhile. The old owner's next heartbeat or change fails."""
    lease = uuid.uuid4().hex
    if not type(run).objects.filter(pk=run.pk, status=run.status, lease=run.lease, **still).update(lease=lease):
        return None
    run.lease = lease
    return RunRecorder(run)


@contextmanager
def heartbeat(run):
    """Keep ``heartbeat_at`` fresh from a side thread while the run's own thread is busy in a
    long dump; a run that stops beating is swept as dead. A beat that finds the lease gone (the
    sweep took the run over while this process was paused) ends the process at once: its own
    thread may be streaming into storage that the sweep already cleaned up."""
    stop = threading.Event()
    interval = settings.BACKUP_HEARTBEAT_SECONDS

    def beat():
        try:
            while not stop.wait(interval):
                try:
                    owned = type(run).objects.filter(pk=run.pk, lease=run.lease).update(heartbeat_at=timezone.now())
                except Exception:  # a busy database must not kill the run; the next beat retries
                    logger.warning("heartbeat for %s failed", run, exc_info=True)
                    continue
                if not owned:
                    logger.error("%s was taken over by the stale-run sweep; stopping this worker process", run)
                    os._exit(1)
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


def execute(model, pk, body, admit=None):
    """Run the recorded run ``pk`` once. ``body(run, recorder)`` does the work; when it returns
    the run is completed, when it raises the run is failed with the error's text, unless the body
    finished the run itself (rolled back, failed with a more precise message). A run that is not
    pending (delivered again after its worker died, already swept) is returned untouched; one
    that ``admit`` refuses (see RunRecorder.start) is failed with the reason. An error that is not
    ours (a bug, a library's) is logged with its traceback too."""
    run = model.objects.get(pk=pk)
    recorder = RunRecorder(run)
    fault_point(f"{model._meta.model_name}.claim")
    try:
        started = recorder.start(admit)
    except BackupError as exc:
        try:
            recorder.finish(RunStatus.FAILED, error_text(exc))
        except LeaseLost:  # a second delivery of its task refused it at the same moment
            pass
        return run
    if not started:
        run.refresh_from_db()
        logger.warning("%s is %s, not pending: nothing to do (a task delivered again, or a run already swept)",
                       run, run.status)
        return run
    try:
        with heartbeat(run):
            body(run, recorder)
    except LeaseLost as exc:
        logger.error("%s", exc)
        return run
    except Exception as exc:
        if not isinstance(exc, BackupError):
            logger.exception("%s failed with an unexpected error", run)
        if run.is_active:
            recorder.finish(RunStatus.FAILED, error_text(exc))
    else:
        if run.is_active:
            recorder.finish(RunStatus.COMPLETED)
    return run
