"""One restore at a time and no backup during a restore: a row in the app database, created in
the same transaction as the restore that holds it and freed in the same transaction that ends it
(services/recorder.py). A lock whose holder is not an active run is stale: the sweep frees it,
and an operator can break it (``manage.py locks --break``, the admin), audited.

Operations that exclude each other check and claim in one step, inside ``claiming()``: a regular
backup starting (no restore lock → in progress), a restore starting (no backup in progress, its
backup still there → its row and the lock), a backup being deleted (no restore using it →
deleting). ``claiming()`` is one transaction that first takes the same database-wide lock, so two
such steps on any workers never interleave: PostgreSQL's transaction advisory lock, and SQLite's
write lock that every transaction takes when it begins (settings: transaction_mode IMMEDIATE).

``exclusive(name)`` is a lock held while a job runs, tried without waiting: the stale-run sweep
runs on every worker, and a sweep that finds another one running skips its turn."""

import fcntl
import os
import zlib
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from backups_app.errors import Busy, NotFound
from backups_app.models import OperationLock, Restore, RunStatus
from backups_app.services import audit

RESTORE_LOCK = "restore"
ACTIVE = [RunStatus.PENDING, RunStatus.IN_PROGRESS]


CLAIM_KEY = zlib.crc32(b"backups_app.claim")  # advisory lock keys: one number per purpose


@contextmanager
def claiming():
    """One atomic check-and-claim at a time across every process and machine."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_KEY])
        yield


@contextmanager
def exclusive(name, wait=False):
    """Yields True while this process holds ``name``, or False at once when another one does
    (``wait``: wait for it instead). PostgreSQL: a session advisory lock, which the server frees
    if the process dies; SQLite, whose app database is on one machine: an flock on a file in the
    spool folder."""
    if connection.vendor == "postgresql":
        # On a connection of its own, so whatever closes the run's connections keeps the lock.
        own = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with own.cursor() as cursor:
                cursor.execute(f"SELECT {'pg_advisory_lock' if wait else 'pg_try_advisory_lock'}(%s)",
                               [zlib.crc32(f"backups_app.{name}".encode())])
                held = wait or cursor.fetchone()[0]
            yield held
        finally:
            own.close()  # frees the lock
        return
    os.makedirs(settings.BACKUP_SPOOL_DIR, exist_ok=True)
    with open(os.path.join(settings.BACKUP_SPOOL_DIR, f".{name}.lock"), "w") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def acquire(name, holder):
    try:
        with transaction.atomic():
            OperationLock.objects.create(name=name, holder=holder)
    except IntegrityError:
        raise Busy(f"{holder} cannot start: {describe(name)}") from None


def describe(name):
    lock = OperationLock.objects.filter(name=name).first()
    if lock is None:
        return "no lock held"
    return (f"{lock.holder} is running since {lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC. "
            "Wait for it to finish (or for the stale-run sweep if its worker died).")


def ensure_free(name, who):
    if OperationLock.objects.filter(name=name).exists():
        raise Busy(f"{who} refused: {describe(name)}")


def holder_state(lock):
    """``(live, text)``: whether the lock's holder is an active run, and what it is."""
    run = Restore.objects.filter(restore_id=lock.holder).first()
    if run is None:
        return False, f"{lock.holder} does not exist (stale)"
    if not run.is_active:
        return False, f"{lock.holder} is {run.status} (stale)"
    beat = f", last heartbeat {(timezone.now() - run.heartbeat_at).seconds} s ago" if run.heartbeat_at else ""
    return True, f"{lock.holder} is {run.status}{beat}"


def free_stale():
    """Free every lock whose holder is not an active run; returns how many."""
    active = Restore.objects.filter(status__in=ACTIVE).values("restore_id")
    return OperationLock.objects.exclude(holder__in=active).delete()[0]


def break_lock(name, user=None, request=None):
    """Remove a stale lock (audited as ``lock.break``); a live one is refused."""
    lock = OperationLock.objects.filter(name=name).first()
    if lock is None:
        raise NotFound(f"No lock {name!r} is held.")
    live, state = holder_state(lock)
    if live:
        raise Busy(f"Lock {name!r} is live: {state}. It is freed when that restore ends; if its worker died, the "
                   "stale-run sweep (manage.py sweepruns) fails it after BACKUP_STALE_SECONDS and frees the lock.")
    OperationLock.objects.filter(pk=lock.pk, holder=lock.holder).delete()
    audit.record("lock.break", user=user, request=request, target=name, details={"holder": lock.holder,
                                                                                  "state": state})
    return state
