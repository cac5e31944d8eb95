"""The admin's "Restore into …" section: target options per component, carried from the plan to
the confirmation, the plan's target table, refusals shown in the form."""

import pytest
from django.urls import reverse

from backups_app.models import Restore, RunStatus
from backups_app.services import backups

pytestmark = pytest.mark.django_db


def test_restore_into_another_folder_from_the_admin(admin_stack, superuser_client, tmp_path):
    uploads, _ = admin_stack
    backup = backups.create_backup()
    (uploads / "a.txt").write_text("changed")
    url = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])
    page = superuser_client.get(url).content.decode()
    assert "Restore into …" in page and 'name="into__uploads__directory"' in page and "uploads.paths" in page
    assert 'name="into__sqlite__directory"' in page

    target = tmp_path / "side"
    plan = superuser_client.post(url, {"components": ["uploads"], "into__uploads__directory": str(target)})
    text = plan.content.decode()
    assert f"the whole folder into folder {target}" in text
    assert "none: side by side, the live store is not touched" in text
    assert "restore-warning" not in text  # nothing live is replaced (the raw plan below still holds its text)
    assert f"uploads.directory={target}" in text  # carried to the confirmation

    confirm = reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id])
    done = superuser_client.post(confirm, {"components": ["uploads"], "options": f"uploads.directory={target}",
                                           "confirmation": backup.backup_id})
    restore = Restore.objects.get()
    assert done.url == reverse("admin:backups_app_restore_change", args=[restore.pk])
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.options == {"uploads": {"directory": str(target)}} and restore.safety_backup is None
    assert (target / "a.txt").read_text() == "alpha" and (uploads / "a.txt").read_text() == "changed"


def test_restore_into_refusals_show_in_the_form(admin_stack, superuser_client):
    uploads, _ = admin_stack
    backup = backups.create_backup()
    url = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])
    page = superuser_client.post(url, {"components": ["uploads"], "into__uploads__directory": str(uploads)})
    assert "this source&#x27;s live data" in page.content.decode()
    twice = superuser_client.post(url, {"components": ["uploads"], "into__uploads__paths": "a.txt",
                                        "options": "uploads.paths=a.txt"})
    assert "is given twice" in twice.content.decode()
    assert not Restore.objects.exists()
