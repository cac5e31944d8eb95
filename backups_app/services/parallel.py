"""The components of one backup, taken side by side: up to ``BACKUP_PARALLEL`` at once (default 2).

Components never depend on each other's data, so each one is taken in a thread of its own; a
backup of several stores then lasts about as long as its slowest one. The threads never write
the run: their log lines, states and counts wait in the recorder until the run's own thread
writes them (``RunRecorder.flush``), so each run keeps one writer (SQLite by default, and the
tests' transaction, would make a second one wait or fail). After a failure no further component
starts; the running ones finish, and the first failure fails the run, led by the store's name.
Each component's facts record its ``started_at`` and ``finished_at`` (the skew between stores)."""

import contextvars
import logging
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups_app import components
from backups_app.errors import BackupError, ConfigurationError
from backups_app.services.recorder import LeaseLost, store_error

logger = logging.getLogger("backups_app")

#: How often the run's thread writes what the component threads logged and moved to (seconds).
FLUSH_SECONDS = 0.2


def parallel_limit():
    """BACKUP_PARALLEL as a number, read at use (the system check backups.E013 reports a bad value)."""
    value = settings.BACKUP_PARALLEL
    try:
        limit = int(str(value).strip())
    except ValueError:
        limit = 0
    if limit < 1:
        raise ConfigurationError(f"BACKUP_PARALLEL={value!r} is not a number of components to take at once "
                                 "(1 or more).")
    return limit


def back_up_components(backup, writer, recorder):
    """{name: facts} of every component of ``backup`` (in its order), taken BACKUP_PARALLEL at a time."""
    failed = []  # the components that failed, first first: once there is one, no further component starts

    def take(name, component):
        if failed:
            return None  # never started: "not_run" once the run has failed
        recorder.progress(name, "running", **_estimate(backup, component))
        started = timezone.now()
        try:
            facts = component.backup(writer.for_component(name, recorder.meter(name)), recorder.log)
        except BaseException:
            failed.append(name)
            recorder.progress(name, "failed")
            raise
        finally:
            connection.close()  # a store that used the app database did so on this thread's own connection
        facts.update(started_at=started.isoformat(), finished_at=timezone.now().isoformat(),
                     engine=components.engine_path(type(component)),
                     artifacts=sorted(a for a, meta in writer.artifacts.items() if meta["component"] == name))
        recorder.progress(name, "done")
        return facts

    chosen = [(name, components.get_component(name)) for name in backup.components]
    with ThreadPoolExecutor(parallel_limit(), thread_name_prefix=f"{backup.backup_id}-") as pool:
        # copy_context: each thread logs with the request id of the run's thread
        futures = {name: pool.submit(contextvars.copy_context().run, take, name, component)
                   for name, component in chosen}
        pending = set(futures.values())
        try:
            while pending:
                _done, pending = wait(pending, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
                recorder.flush()
        except LeaseLost:
            failed.append(None)  # the sweep took the run over: start nothing more
            raise
    recorder.flush()
    for name in failed:
        if not isinstance(futures[name].exception(), BackupError):
            logger.error("%s: %s failed with an unexpected error", backup, name, exc_info=futures[name].exception())
    if failed:
        first, *others = failed
        for name in others:
            recorder.log(f"also failed: {store_error(name, futures[name].exception())}")
        exc = futures[first].exception()
        raise BackupError(store_error(first, exc)) from exc
    return {name: future.result() for name, future in futures.items()}


def _estimate(backup, component):
    """The progress totals ``component.estimate()`` gives; {} when it cannot tell. It only feeds the
    progress bar: a store that does not answer fails the backup itself, with its own words."""
    try:
        return component.estimate()
    except Exception:
        logger.warning("%s: %s could not estimate its size", backup, component.name, exc_info=True)
        return {}
