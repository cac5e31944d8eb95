"""The restore lock as an operator sees it: a live one cannot be broken, a stale one (its holder
ended, or never existed) is freed by the sweep or broken by hand, audited; ``manage.py locks``
shows the holder's state (the admin page: tests/admin/test_locks.py)."""

import pytest
from django.core.management import CommandError, call_command

from backups_app.errors import Busy
from backups_app.models import AuditEvent, OperationLock, Restore, RunStatus
from backups_app.services import locks
from backups_app.services.sweep import sweep_stale_runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def held():
    """A restore in progress holding the restore lock."""
    restore = Restore.objects.create(restore_id="restore_20990101_000000", source_backup_id="backup_20990101_000000",
                                     status=RunStatus.IN_PROGRESS)
    locks.acquire(locks.RESTORE_LOCK, restore.restore_id)
    return restore


def test_a_live_lock_is_refused_a_stale_one_is_broken_and_audited(held, capsys):
    with pytest.raises(Busy, match="Lock 'restore' is live: restore_20990101_000000 is in_progress"):
        locks.break_lock(locks.RESTORE_LOCK)
    with pytest.raises(CommandError, match="is live"):
        call_command("locks", "--break", "restore")
    Restore.objects.filter(pk=held.pk).update(status=RunStatus.COMPLETED)  # ended without freeing it
    call_command("locks")
    assert "restore_20990101_000000 is completed (stale)" in capsys.readouterr().out
    call_command("locks", "--break", "restore")
    assert not OperationLock.objects.exists()
    event = AuditEvent.objects.get(action="lock.break")
    assert (event.target, event.details["holder"]) == ("restore", "restore_20990101_000000")


def test_the_sweep_frees_a_lock_whose_holder_is_not_an_active_run(held):
    assert sweep_stale_runs() == 0 and OperationLock.objects.exists()  # its holder is alive
    locks.acquire("other", "restore_20990101_000009")  # no such run
    Restore.objects.filter(pk=held.pk).update(status=RunStatus.FAILED)
    sweep_stale_runs()
    assert not OperationLock.objects.exists()
