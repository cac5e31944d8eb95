"""The history pages and the API list cost a fixed number of SQL queries whatever the history holds
(1,000 runs, each started by its own user: at most 10, no query per row); /metrics and health cost
the same with ten runs or a thousand."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backups_app.models import Backup, Restore, RunStatus, Verification
from tests.api.conftest import staff_user, token_client

RUNS = 1000
PAGES = ["/admin/backups_app/backup/", "/admin/backups_app/restore/", "/admin/backups_app/verification/"]


def add_history(count, start=0):
    """``count`` completed backups, each with a restore and a verification, by users of their own."""
    users = User.objects.bulk_create(User(username=f"operator{n}") for n in range(start, start + count))
    now = timezone.now()
    made = Backup.objects.bulk_create(
        Backup(backup_id=f"backup_20260101_{n:06d}", status=RunStatus.COMPLETED, created_by=user,
               created_at=now - timedelta(minutes=n), components=["uploads"], size_bytes=n,
               manifest={"components": {"uploads": {"counts": {"files": n}}}})
        for n, user in enumerate(users, start))
    Restore.objects.bulk_create(
        Restore(restore_id=f"restore_20260101_{n:06d}", backup=backup, source_backup_id=backup.backup_id,
                safety_backup=backup, status=RunStatus.COMPLETED, created_by=backup.created_by)
        for n, backup in enumerate(made, start))
    Verification.objects.bulk_create(
        Verification(backup=backup, source_backup_id=backup.backup_id, status=RunStatus.COMPLETED,
                     created_by=backup.created_by, finished_at=now) for backup in made)


@pytest.fixture
def long_history(db):
    add_history(RUNS)


@pytest.mark.parametrize("page", PAGES)
def test_history_pages_take_a_fixed_number_of_queries(long_history, client, django_assert_max_num_queries, page):
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    with django_assert_max_num_queries(10):
        response = client.get(page)
    assert response.status_code == 200
    assert response.context["cl"].result_count == RUNS


@pytest.mark.parametrize("path", ["/api/system/backups", "/api/system/backups?limit=100"])
def test_the_api_list_takes_a_fixed_number_of_queries(long_history, django_assert_max_num_queries, path):
    api = token_client(staff_user("root", superuser=True))
    with django_assert_max_num_queries(10):
        response = api.get(path)
    assert response.status_code == 200 and response.json()["total"] == RUNS


@pytest.mark.parametrize("path", ["/metrics", "/api/system/health"])
def test_metrics_and_health_cost_the_same_with_ten_or_a_thousand_runs(db, uploads, path):
    api = token_client(staff_user("root", superuser=True))
    queries = []
    for count, start in ((10, 0), (RUNS - 10, 10)):
        add_history(count, start)
        with CaptureQueriesContext(connection) as captured:
            assert api.get(path).status_code in (200, 503)  # health may call the history stale
        queries.append(len(captured))
    assert queries[0] == queries[1], queries
