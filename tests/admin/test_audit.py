"""The audit log admin (admin/audit.py): listed, never added, changed or deleted."""

import pytest

from backups_app.models import AuditEvent
from tests.admin.conftest import CHANGELIST

pytestmark = pytest.mark.django_db


def test_audit_log_is_read_only(client, staff, three_backups):
    client.post(CHANGELIST, {"action": "pin_backups", "_selected_action": [three_backups[0].pk]})
    event = AuditEvent.objects.get(action="backup.pin")
    events = AuditEvent.objects.count()
    assert client.get("/admin/backups_app/auditevent/").status_code == 200
    assert client.get("/admin/backups_app/auditevent/add/").status_code == 403
    assert client.post(f"/admin/backups_app/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.count() == events and AuditEvent.objects.filter(pk=event.pk).exists()
