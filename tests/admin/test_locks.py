"""The locks page: each lock with its holder's state; breaking refuses a live one."""

import pytest

from backups_app.models import OperationLock, Restore, RunStatus
from backups_app.services import locks

pytestmark = pytest.mark.django_db
LOCKS = "/admin/backups_app/operationlock/"


def test_the_admin_shows_locks_and_breaks_only_stale_ones(superuser_client):
    holder = Restore.objects.create(restore_id="restore_20990101_000000", source_backup_id="backup_20990101_000000",
                                    status=RunStatus.IN_PROGRESS)
    locks.acquire(locks.RESTORE_LOCK, holder.restore_id)
    assert "restore_20990101_000000 is in_progress" in superuser_client.get(LOCKS).content.decode()
    action = {"action": "break_locks", "_selected_action": [OperationLock.objects.get().pk]}
    page = superuser_client.post(LOCKS, action, follow=True).content.decode()
    assert "is live" in page and OperationLock.objects.exists()
    holder.delete()
    page = superuser_client.post(LOCKS, action, follow=True).content.decode()
    assert "does not exist (stale)" in page and not OperationLock.objects.exists()
