"""Verification state on the backup (issue 17 §4): the list and the page say verified / damaged /
never verified, the backup's page has *Verify now* and *Rehearse restore* (POST only, with the
change permission, queued like the bulk actions), and shows the last rehearsal with its RTO."""

import pytest
from django.urls import reverse

from backups_app.models import AuditEvent, Backup, RunStatus, Verification
from backups_app.services import backups
from tests.admin.conftest import CHANGELIST, staff_member

pytestmark = pytest.mark.django_db


def page_of(client, backup):
    return client.get(reverse("admin:backups_app_backup_change", args=[backup.pk])).content.decode()


def verify_url(backup):
    return reverse("admin:backups_app_backup_verify", args=[backup.backup_id])


def test_verify_now_and_rehearse_from_the_backup_page(admin_stack, client, backup_storage_dir):
    client.force_login(staff_member("view_backup", "change_backup", "view_verification"))
    backup = backups.create_backup()
    page = page_of(client, backup)
    assert "not verified yet" in page and "never rehearsed" in page
    assert f'action="{verify_url(backup)}"' in page and ">Verify now</button>" in page

    response = client.post(verify_url(backup), {"kind": "quick"})
    check = Verification.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:backups_app_verification_change", args=[check.pk])
    assert (check.kind, check.status, check.trigger) == ("quick", RunStatus.COMPLETED, "admin")
    assert AuditEvent.objects.filter(action="backup.verify.quick", target=backup.backup_id).count() == 1
    assert 'class="backup-verified"' in page_of(client, backup)

    client.post(verify_url(backup), {"kind": "deep"})
    rehearsal = Verification.objects.get(kind="deep")
    assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error
    page = page_of(client, backup)
    link = reverse("admin:backups_app_verification_change", args=[rehearsal.pk])
    assert f'<a class="last-rehearsal" href="{link}">✔ passed</a>' in page
    rto = sum(r["seconds"] for r in rehearsal.results.values())
    assert "· RTO " in page and "uploads " in page and "sqlite " in page and rto > 0

    # Damaged: the page and the list say so.
    (backup_storage_dir / backup.backup_id / "uploads.tar.zst").write_bytes(b"garbage")
    client.post(verify_url(backup), {"kind": "quick"})
    assert 'class="backup-damaged"' in page_of(client, backup)
    assert 'class="backup-damaged"' in client.get(CHANGELIST).content.decode()


def test_verify_now_is_post_only_needs_the_change_permission_and_a_completed_backup(admin_stack, client):
    backup = backups.create_backup()
    client.force_login(staff_member("view_backup"))
    assert ">Verify now</button>" not in page_of(client, backup)
    assert client.post(verify_url(backup), {"kind": "quick"}).status_code == 403
    client.force_login(staff_member("view_backup", "change_backup"))
    assert client.get(verify_url(backup)).status_code == 405
    assert not Verification.objects.exists()

    failed = Backup.objects.create(backup_id="backup_20260101_000000", status=RunStatus.FAILED, components=["uploads"])
    response = client.post(verify_url(failed), {"kind": "quick"}, follow=True)
    assert response.redirect_chain[0][0] == CHANGELIST
    assert "is failed, not completed" in response.content.decode() and not Verification.objects.exists()
