"""The restore flow on the backup admin (admin/restores.py): plan → typed confirmation → result,
options validated in the form, the restore permission enforced."""

import re

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
    assert wrong.status_code == 200 and not Restore.objects.exists()
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


def test_wrong_confirmation_shows_the_plan_again_with_the_choices_kept(admin_stack, superuser_client, tmp_path):
    uploads, _ = admin_stack
    backup = backups.create_backup()
    (uploads / "a.txt").write_text("changed")
    aside = tmp_path / "aside"
    confirm_url = reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id])
    wrong = superuser_client.post(confirm_url, {"components": ["uploads"], "confirmation": "backup_typo",
                                                "options": f"uploads.directory={aside}"})
    page = wrong.content.decode()
    assert wrong.status_code == 200 and "Step 2 of 3" in page
    assert f'<ul class="errorlist" id="confirmation-error"><li>Not confirmed: type {backup.backup_id} exactly.' in page
    assert '<input type="hidden" name="components" value="uploads">' in page
    assert '<input type="hidden" name="components" value="sqlite">' not in page
    assert f"<textarea name=\"options\" hidden>uploads.directory={aside}</textarea>" in page
    assert not Restore.objects.exists() and (uploads / "a.txt").read_text() == "changed" and not aside.exists()

    # "Change the selection" goes back to step 1 with the same choices filled in.
    change = re.search(r'<a href="([^"]+)" class="change-selection">', page).group(1)
    step1 = superuser_client.get(change.replace("&amp;", "&")).content.decode()
    assert "Step 1 of 3" in step1
    assert re.search(r'<input type="checkbox" name="components" value="uploads"[^>]* checked>', step1)
    assert not re.search(r'<input type="checkbox" name="components" value="sqlite"[^>]* checked>', step1)
    assert f'name="into__uploads__directory" value="{aside}"' in step1

    # The right id then restores into the folder given first.
    done = superuser_client.post(confirm_url, {"components": ["uploads"], "confirmation": backup.backup_id,
                                               "options": f"uploads.directory={aside}"})
    assert done.status_code == 302 and Restore.objects.get().status == RunStatus.COMPLETED
    assert (aside / "a.txt").read_text() == "alpha" and (uploads / "a.txt").read_text() == "changed"
