"""`manage.py create_api_token`: the token is printed once and stored hashed; only active staff get one."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from backups_app.models import ApiToken

pytestmark = pytest.mark.django_db


def create(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_prints_a_working_token_once_and_stores_only_its_hash():
    User.objects.create_user("ops", is_staff=True, is_superuser=True)
    token, note = create("ops", "--name", "nightly job")
    record = ApiToken.objects.get()
    assert record.name == "nightly job" and token.startswith(record.prefix) and "cannot be shown again" in note
    assert token not in str(list(ApiToken.objects.values()))
    assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/system/backups").status_code == 200


def test_refuses_unknown_and_non_staff_users():
    with pytest.raises(CommandError, match="No user 'ghost'"):
        create("ghost")
    User.objects.create_user("viewer")
    with pytest.raises(CommandError, match="not an active staff user"):
        create("viewer")
    assert not ApiToken.objects.exists()
