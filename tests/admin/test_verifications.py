"""The verification history is a run admin like the others: the status badge, the log, and a
page whose progress is polled while the run is active; read-only."""

import pytest

from backups_app.models import RunStatus, Verification
from backups_app.services import backups

pytestmark = pytest.mark.django_db


def test_verification_pages_show_the_badge_and_refresh_while_active(admin_client, uploads):
    backup = backups.create_backup()
    running = Verification.objects.create(backup=backup, source_backup_id=backup.backup_id, kind="deep",
                                          status=RunStatus.IN_PROGRESS, components=["uploads"], log="step one\n")
    page = admin_client.get(f"/admin/backups_app/verification/{running.pk}/change/").content.decode()
    assert 'class="run-status"' in page and "In Progress" in page and "step one" in page
    assert 'data-active="1"' in page and "/admin/backups_app/verification/progress/" in page
    polled = admin_client.get("/admin/backups_app/verification/progress/", {"id": running.pk, "log": 1}).json()
    run = polled["runs"][str(running.pk)]
    assert run["active"] is True and run["log"] == "step one\n"
    assert set(run["fields"]) == {"started_at", "host", "worker"}  # the poll's own fields, rendered
    Verification.objects.filter(pk=running.pk).update(status=RunStatus.COMPLETED)
    page = admin_client.get(f"/admin/backups_app/verification/{running.pk}/change/").content.decode()
    assert 'data-active="0"' in page and "Download" not in page  # no set links on a verification
    assert 'class="run-status"' in admin_client.get("/admin/backups_app/verification/").content.decode()
    delete = admin_client.post(f"/admin/backups_app/verification/{running.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403 and Verification.objects.filter(pk=running.pk).exists()
