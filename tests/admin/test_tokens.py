"""The token admin: create shows the token once, the list never shows it, revoke stops it working;
only superusers create or revoke tokens for other users."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory

from backups_app.admin.tokens import ApiTokenAdmin
from backups_app.models import ApiToken
from backups_app.services import tokens

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


@pytest.fixture
def token_clerk():
    """A staff user who may add, change and view tokens, but is no superuser."""
    clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(
        codename__in=["add_apitoken", "change_apitoken", "view_apitoken"]))
    client = Client()
    client.login(username="clerk", password="pw")
    return clerk, client


def test_non_superuser_creates_tokens_only_for_themself(token_clerk):
    clerk, client = token_clerk
    root = User.objects.create_superuser("root", password="pw")
    response = client.post(f"{CHANGELIST}add/", {"user": root.pk, "name": "escalate"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()

    client.post(f"{CHANGELIST}add/", {"user": clerk.pk, "name": "mine"})
    assert ApiToken.objects.get().user == clerk


def test_save_model_refuses_another_users_token_for_non_superusers(token_clerk):
    clerk, _client = token_clerk
    root = User.objects.create_superuser("root", password="pw")
    request = RequestFactory().post(f"{CHANGELIST}add/")
    request.user = clerk
    with pytest.raises(PermissionDenied):
        ApiTokenAdmin(ApiToken, admin.site).save_model(request, ApiToken(user=root, name="x"), None, change=False)
    assert not ApiToken.objects.exists()


def test_non_superuser_sees_and_revokes_only_their_own_tokens(token_clerk):
    clerk, client = token_clerk
    root = User.objects.create_superuser("root", password="pw")
    theirs, _ = tokens.create_token(root, "root's")
    mine, _ = tokens.create_token(clerk, "mine")
    listing = client.get(CHANGELIST).content.decode()
    assert mine.prefix in listing and theirs.prefix not in listing
    client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [theirs.pk, mine.pk]})
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.revoked_at is None and mine.revoked_at is not None



def test_new_token_form_defaults_to_the_user_creating_it(admin_client_logged_in):
    User.objects.create_user("ops", is_staff=True)
    root = User.objects.get(username="root")
    page = admin_client_logged_in.get(f"{CHANGELIST}add/").content.decode()
    assert re.search(rf'<option value="{root.pk}" selected>root</option>', page)
