"""The token admin: create shows the token once, the list never shows it, revoke stops it working."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from backups_app.models import ApiToken

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/backups_app/apitoken/"


@pytest.fixture
def admin_client_logged_in():
    User.objects.create_superuser("root", password="pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def test_create_list_and_revoke(admin_client_logged_in):
    client = admin_client_logged_in
    ops = User.objects.create_user("ops", is_staff=True, is_superuser=True)
    response = client.post(f"{CHANGELIST}add/", {"user": ops.pk, "name": "ci"}, follow=True)
    token = re.search(r"(bk_[A-Za-z0-9_-]{40,})", response.content.decode()).group(1)
    record = ApiToken.objects.get()
    assert record.user == ops and record.name == "ci" and token.startswith(record.prefix)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/system/backups").status_code == 200

    listing = client.get(CHANGELIST).content.decode()
    assert record.prefix in listing and token not in listing
    client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [record.pk]})
    record.refresh_from_db()
    assert record.revoked_at is not None
    assert api.get("/api/system/backups").status_code == 401


def test_only_staff_can_be_given_tokens(admin_client_logged_in):
    viewer = User.objects.create_user("viewer")
    response = admin_client_logged_in.post(f"{CHANGELIST}add/", {"user": viewer.pk, "name": "x"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()
