"""One restore at a time and no backup during a restore: a row in the app database, created in
the same transaction as the restore that holds it and freed in the same transaction that ends it
(services/recorder.py). A lock whose holder is not an active run is stale: the sweep frees it,
and an operator can break it (``manage.py locks --break``, the admin), audited."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups_app.errors import Busy, NotFound
from backups_app.models import OperationLock, Restore, RunStatus
from backups_app.services import audit

RESTORE_LOCK = "restore"
ACTIVE = [RunStatus.PENDING, RunStatus.IN_PROGRESS]


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
