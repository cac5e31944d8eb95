"""Server errors are never silent: an unexpected exception in the API, the admin or a run is
logged with its traceback through the configured console handler (settings.LOGGING), masked, on a
line that carries the request id; the API answers 500 in the {error, detail} shape with that id."""

import io
import logging
import re
from contextlib import contextmanager

import pytest
from django.test import Client

from backups_app.admin.backups import BackupAdmin
from backups_app.models import Backup, RunStatus
from backups_app.services import backups
from backups_app.services.recorder import execute
from tests.api.conftest import staff_user, token_client

pytestmark = pytest.mark.django_db
SECRET = "mail-s3cret-pw-4242"


@pytest.fixture(autouse=True)
def secret(settings):
    settings.EMAIL_HOST_PASSWORD = SECRET  # a configured secret: masked wherever it would be logged


@pytest.fixture
def api():
    return token_client(staff_user("root", superuser=True))


@contextmanager
def console():
    """What the configured console handler writes meanwhile."""
    (handler,) = [h for h in logging.getLogger().handlers if h.name == "console"]
    out = io.StringIO()
    previous = handler.setStream(out)
    try:
        yield out
    finally:
        handler.setStream(previous)


def fail(*args, **kwargs):
    raise RuntimeError(f"cannot connect with password {SECRET}")


def test_an_api_500_answers_in_the_error_shape_with_the_request_id_that_is_in_the_log(api, monkeypatch):
    monkeypatch.setattr(backups, "list_backups", fail)
    with console() as out:
        response = api.get("/api/system/backups", HTTP_X_REQUEST_ID="ticket-4242-abcd")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "server_error" and body["request_id"] == "ticket-4242-abcd"
    assert "ticket-4242-abcd" in body["detail"] and SECRET not in response.content.decode()
    assert response["X-Request-ID"] == "ticket-4242-abcd"

    log = out.getvalue()
    assert re.search(r"ERROR backups_app pid=\d+ request=ticket-4242-abcd Internal server error: GET "
                     r"/api/system/backups", log), log
    assert "Traceback (most recent call last)" in log and "RuntimeError: cannot connect with password ***" in log
    assert SECRET not in log


def test_a_request_without_an_id_gets_one_and_a_client_id_that_is_not_a_plain_token_is_replaced(api, monkeypatch):
    monkeypatch.setattr(backups, "list_backups", fail)
    with console() as out:
        response = api.get("/api/system/backups", HTTP_X_REQUEST_ID="bad id\nwith newline")
    request_id = response.json()["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id) and response["X-Request-ID"] == request_id
    assert f"request={request_id} Internal server error" in out.getvalue()


def test_an_admin_500_is_logged_with_traceback_and_request_id(monkeypatch):
    client = Client(raise_request_exception=False)
    client.force_login(staff_user("boss", superuser=True))
    monkeypatch.setattr(BackupAdmin, "get_queryset", fail)
    with console() as out:
        response = client.get("/admin/backups_app/backup/")
    assert response.status_code == 500
    request_id = response["X-Request-ID"]
    log = out.getvalue()
    assert re.search(rf"ERROR django.request pid=\d+ request={request_id} Internal Server Error: "
                     r"/admin/backups_app/backup/", log), log
    assert "Traceback (most recent call last)" in log and "password ***" in log and SECRET not in log


def test_an_unexpected_error_in_a_run_is_logged_with_its_traceback_and_fails_the_run():
    backup = Backup.objects.create(backup_id="backup_20260101_000000", components=["uploads"])
    with console() as out:
        execute(Backup, backup.pk, lambda run, recorder: fail())
    backup.refresh_from_db()
    assert backup.status == RunStatus.FAILED and backup.error == "RuntimeError: cannot connect with password ***"
    log = out.getvalue()
    assert "ERROR backups_app" in log and "backup_20260101_000000 failed with an unexpected error" in log
    assert "Traceback (most recent call last)" in log and SECRET not in log
