"""Authentication and permissions of the API (api/auth.py): bearer tokens (stored hashed, revocable,
staff only) and staff sessions (CSRF on writes); every action needs its own permission."""

import hashlib

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backups_app.models import ApiToken
from tests.api.conftest import assert_error, staff_user, token_client

pytestmark = pytest.mark.django_db
API = "/api/system"

ACTIONS = [  # (method, path, body, permission)
    ("post", "/backup", {}, "backups_app.add_backup"),
    ("get", "/backups", None, "backups_app.view_backup"),
    ("get", "/backup/backup_20990101_000000", None, "backups_app.view_backup"),
    ("get", "/backup/backup_20990101_000000/download", None, "backups_app.download_backup"),
    ("delete", "/backup/backup_20990101_000000", None, "backups_app.delete_backup"),
    ("post", "/backup/backup_20990101_000000/verify", None, "backups_app.change_backup"),
    ("post", "/backup/backup_20990101_000000/rehearse", None, "backups_app.change_backup"),
    ("post", "/restore", {"backup_id": "backup_20990101_000000"}, "backups_app.restore_backup"),
    ("get", "/restore/status", None, "backups_app.view_restore"),
]


def call(client, method, path, body):
    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(API + path, **kwargs)


@pytest.mark.parametrize("method,path,body,permission", ACTIONS)
def test_each_action_needs_its_permission(method, path, body, permission, pg_stack):
    anonymous = call(Client(), method, path, body)
    assert_error(anonymous, 401, "not_authenticated")
    assert anonymous["WWW-Authenticate"] == "Bearer"
    assert_error(call(Client(HTTP_AUTHORIZATION="Bearer bk_wrong"), method, path, body), 401, "not_authenticated")

    others = [p for _m, _p, _b, p in ACTIONS if p != permission]
    body_403 = assert_error(call(token_client(staff_user("lacking", *others)), method, path, body), 403,
                            "permission_denied")
    assert permission in body_403["detail"]
    allowed = call(token_client(staff_user("allowed", permission)), method, path, body)
    assert allowed.status_code not in (401, 403), allowed.content


def test_non_staff_tokens_are_refused(pg_stack):
    user = staff_user("former", "backups_app.view_backup")
    client = token_client(user)
    user.is_staff = False
    user.save()
    assert_error(client.get(f"{API}/backups"), 403, "permission_denied")
    user.is_active = False
    user.save()
    assert_error(client.get(f"{API}/backups"), 401, "not_authenticated")


def test_tokens_are_stored_hashed_and_can_be_revoked(db):
    user = staff_user("ops", "backups_app.view_backup")
    from backups_app.services import tokens

    record, token = tokens.create_token(user, "ci")
    assert token not in str(list(ApiToken.objects.values()))
    assert record.key_hash == hashlib.sha256(token.encode()).hexdigest() and token.startswith(record.prefix)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(f"{API}/backups").status_code == 200
    record.refresh_from_db()
    assert record.last_used_at is not None
    assert tokens.revoke(ApiToken.objects.filter(pk=record.pk)) == 1
    assert_error(client.get(f"{API}/backups"), 401, "not_authenticated")


def test_session_of_a_non_staff_user_is_refused(pg_stack):
    User.objects.create_user("visitor", password="pw")
    browser = Client()
    assert browser.login(username="visitor", password="pw")
    assert_error(browser.get(f"{API}/backups"), 403, "permission_denied")


def test_session_auth_requires_csrf_on_writes(pg_stack):
    staff_user("web", "backups_app.view_backup", "backups_app.add_backup", password="pw")
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="web", password="pw")
    assert browser.get(f"{API}/backups").status_code == 200
    body = assert_error(browser.post(f"{API}/backup", {}, content_type="application/json"), 403, "permission_denied")
    assert "CSRF" in body["detail"]
    browser.get("/admin/")  # sets the csrftoken cookie, as any admin page with a form does
    token = browser.cookies["csrftoken"].value
    response = browser.post(f"{API}/backup", {"components": ["sqlite"]}, content_type="application/json",
                            HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202, response.content
