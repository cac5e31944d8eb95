"""Staff users with permissions, clients holding their API tokens, and the check of the API's error
shape. The API tests run against tests/conftest.py's ``pg_stack`` (PostgreSQL, SQLite, uploads)."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from backups_app.services import tokens


def staff_user(username, *perms, superuser=False, password=None):
    user = User.objects.create_user(username, password=password, is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def token_client(user):
    _record, token = tokens.create_token(user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def admin_api(db):
    """A client authenticated by bearer token as a superuser."""
    return token_client(staff_user("root", superuser=True))


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code and body["detail"], body
    return body
