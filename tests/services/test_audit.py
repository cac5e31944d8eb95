"""Audit rows: who, what, when, from where, for the actions wired in commands and services."""

import getpass
import socket

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from backups_app.models import AuditEvent
from backups_app.services import audit

pytestmark = pytest.mark.django_db


def test_commands_record_backup_restore_and_verify(demo_stack, capsys):
    call_command("backup")
    backup_id = capsys.readouterr().out.strip()
    call_command("restore", backup_id, "--components", "sqlite", "--yes")
    restore_id = capsys.readouterr().out.strip()
    call_command("verifybackup", backup_id)
    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.action, e.target) for e in events] == [
        ("backup.create", backup_id), ("restore.start", restore_id), ("backup.verify.quick", backup_id)]
    assert events[1].details == {"backup_id": backup_id, "components": ["sqlite"]}
    assert {e.origin for e in events} == {f"{getpass.getuser()}@{socket.gethostname()}"}
    assert all(e.user is None and e.username == "" and e.created_at for e in events)


def test_record_takes_user_and_address_from_the_request(django_user_model):
    user = django_user_model.objects.create_user("alice")
    request = RequestFactory().delete("/api/system/backup/x", REMOTE_ADDR="198.51.100.4")
    request.user = user
    event = audit.record("backup.delete", request=request, target="backup_20260101_000000", details={"size": 1})
    assert (event.user, event.username, event.origin, event.action) == (user, "alice", "198.51.100.4",
                                                                        "backup.delete")
    user.delete()
    event.refresh_from_db()
    assert event.user is None and event.username == "alice"  # the record outlives the account
