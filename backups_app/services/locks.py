"""One restore at a time and no backup during a restore: a row in the app database."""

from django.db import IntegrityError, transaction

from backups_app.errors import Busy
from backups_app.models import OperationLock

RESTORE_LOCK = "restore"


def acquire(name, holder):
    try:
        with transaction.atomic():
            OperationLock.objects.create(name=name, holder=holder)
    except IntegrityError:
        raise Busy(f"{holder} cannot start: {describe(name)}") from None


def release(name, holder):
    OperationLock.objects.filter(name=name, holder=holder).delete()


def describe(name):
    lock = OperationLock.objects.filter(name=name).first()
    if lock is None:
        return "no lock held"
    return (f"{lock.holder} is running since {lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC. "
            "Wait for it to finish (or for the stale-run sweep if its worker died).")


def ensure_free(name, who):
    if OperationLock.objects.filter(name=name).exists():
        raise Busy(f"{who} refused: {describe(name)}")
