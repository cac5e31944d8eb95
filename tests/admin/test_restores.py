"""The restore flow on the backup admin (admin/restores.py): plan → typed confirmation → result,
options validated in the form, the restore permission enforced."""

import pytest
from django.urls import reverse

from backups_app.models import Restore, RunStatus
from backups_app.services import backups
from tests.admin.conftest import staff_member

pytestmark = pytest.mark.django_db


def test_restore_flow_plan_then_typed_confirmation(admin_stack, superuser_client):
    uploads, _ = admin_stack
    backup = backups.create_backup()
    (uploads / "a.txt").write_text("changed")
    url = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])

    assert b"Plan the restore" in superuser_client.get(url).content
    plan = superuser_client.post(url, {"components": ["uploads"]})
    assert b"This will overwrite existing data" in plan.content
    assert b"verified" in plan.content and b"Type the backup id" in plan.content
    assert not Restore.objects.exists()

    confirm_url = reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id])
    assert superuser_client.get(confirm_url).status_code == 405  # POST only
    wrong = superuser_client.post(confirm_url, {"components": ["uploads"], "confirmation": "yes"})
    assert wrong.status_code == 302 and not Restore.objects.exists()
    assert (uploads / "a.txt").read_text() == "changed"

    done = superuser_client.post(confirm_url, {"components": ["uploads"], "confirmation": backup.backup_id})
    restore = Restore.objects.get()
    assert done.url == reverse("admin:backups_app_restore_change", args=[restore.pk])
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.components == ["uploads"] and restore.trigger == "admin"
    assert (uploads / "a.txt").read_text() == "alpha"
    assert b"finished: completed" in superuser_client.get(done.url).content


def test_restore_options_are_validated_in_the_form(admin_stack, superuser_client):
    backup = backups.create_backup()
    url = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])
    page = superuser_client.post(url, {"components": ["uploads"], "options": "uploads.mode=merge"})
    assert b"unknown option(s) mode" in page.content


def test_restore_needs_restore_permission(admin_stack, client):
    backup = backups.create_backup()
    client.force_login(staff_member("view_backup", "view_restore", "download_backup"))
    assert client.get(reverse("admin:backups_app_backup_restore", args=[backup.backup_id])).status_code == 403
    confirm = client.post(reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id]),
                          {"components": ["uploads"], "confirmation": backup.backup_id})
    assert confirm.status_code == 403 and not Restore.objects.exists()
