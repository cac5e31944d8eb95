"""The admin's Rescan storage button: POST only, needs the add-backup permission, imports the
signed sets the catalog lacks and says which sets it left out and why."""

import pytest
from django.urls import reverse

from backups_app.models import AuditEvent, Backup, Trigger
from backups_app.services import backups
from tests.admin.conftest import CHANGELIST, staff_member

pytestmark = pytest.mark.django_db
RESCAN = reverse("admin:backups_app_backup_rescan")


def test_rescan_imports_signed_sets_and_names_the_refused(admin_stack, superuser_client, settings,
                                                          backup_storage_dir):
    settings.BACKUP_SIGNING_KEY = ["s" * 40]
    signed = backups.create_backup()
    settings.BACKUP_SIGNING_KEY = []
    unsigned = backups.create_backup()
    settings.BACKUP_SIGNING_KEY = ["s" * 40]
    Backup.objects.all().delete()
    assert b"Rescan storage" in superuser_client.get(CHANGELIST).content

    assert superuser_client.get(RESCAN).status_code == 405  # a GET never imports
    page = superuser_client.post(RESCAN, follow=True)

    assert list(Backup.objects.values_list("backup_id", "trigger")) == [(signed.backup_id, Trigger.IMPORT)]
    text = " ".join(m.message for m in page.context["messages"])
    assert "2 set(s) found, 1 imported" in text and f"{unsigned.backup_id} not imported: " in text
    assert AuditEvent.objects.get(action="catalog.scan").username == "boss"


def test_rescan_needs_the_add_backup_permission(admin_stack, client, settings):
    settings.BACKUP_SIGNING_KEY = ["s" * 40]
    backups.create_backup()
    Backup.objects.all().delete()
    client.force_login(staff_member("view_backup"))
    assert b"Rescan storage" not in client.get(CHANGELIST).content
    assert client.post(RESCAN).status_code == 403
    assert not Backup.objects.exists()
