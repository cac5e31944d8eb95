"""The history pages and the API list cost a fixed number of SQL queries whatever the history holds
(1,000 runs, each started by its own user: at most 10, no query per row); so does a backup's page
whatever it holds; /metrics and health cost the same queries and read the same runs with a short
history or a long one, damaged backups and a source never backed up included."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backups_app.models import Backup, BackupArtifact, Restore, RunStatus, Trigger, Verification
from tests import stacks
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


# A short history and a long one, of the sources but the last (configured, never backed up).
SHORT, LONG = 30, 300
SOURCES = ["postgres", "redis", "uploads", "media"]
HISTORY_PAGES = ["/admin/backups_app/backup/", "/api/system/backups?limit=100"]


def add_mixed_history(count, start=0):
    """``count`` backups from the ``start``-th newest on, started by ten users in turn or by the
    schedule; every 7th failed. Of the completed ones: an artifact per source, a passed verification
    of every 3rd, then a failed one of every 11th of the 30 newest (damaged, the newest among them:
    health names each damaged backup, so there are as many in a long history), a rehearsal of every
    10th, a restore from every 20th."""
    users = User.objects.bulk_create(User(username=f"mixed{n}") for n in range(start, start + 10))
    now, held = timezone.now(), SOURCES[:-1]
    made = Backup.objects.bulk_create(
        Backup(backup_id=f"backup_20260102_{n:06d}", status=RunStatus.FAILED if n % 7 == 6 else RunStatus.COMPLETED,
               trigger=Trigger.SCHEDULE if n % 4 == 0 else Trigger.ADMIN,
               created_by=None if n % 4 == 0 else users[n % 10], components=held, size_bytes=n,
               created_at=now - timedelta(minutes=n), started_at=now - timedelta(minutes=n),
               finished_at=now - timedelta(minutes=n - 1), host=f"host{n % 3}", worker=f"host{n % 3}:1",
               manifest={"components": {name: {"counts": {"rows": n}} for name in held}})
        for n in range(start, start + count))
    completed = [(n, b) for n, b in enumerate(made, start) if b.status == RunStatus.COMPLETED]
    BackupArtifact.objects.bulk_create(BackupArtifact(backup=b, name=f"{name}.dump", component=name, sha256="0" * 64)
                                       for _n, b in completed for name in held)

    def check(backup, minutes, **fields):
        return Verification(backup=backup, source_backup_id=backup.backup_id, components=held, host="host1",
                            finished_at=backup.finished_at + timedelta(minutes=minutes), **fields)

    Verification.objects.bulk_create(
        [check(b, 1, status=RunStatus.COMPLETED) for n, b in completed if n % 3 == 0]
        + [check(b, 2, status=RunStatus.FAILED) for n, b in completed if n % 11 == 0 and n < SHORT]
        + [check(b, 3, status=RunStatus.COMPLETED, kind=Verification.Kind.DEEP,
                 results={name: {"ok": True, "seconds": 2.0} for name in held}) for n, b in completed if n % 10 == 0])
    Restore.objects.bulk_create(
        Restore(restore_id=f"restore_20260102_{n:06d}", backup=b, source_backup_id=b.backup_id, components=held,
                status=RunStatus.COMPLETED, created_by=users[0], host="host0", finished_at=b.finished_at)
        for n, b in completed if n % 20 == 0)


@pytest.fixture
def mixed_sources(sources, tmp_path):
    sources(**{name: stacks.uploads_source(tmp_path / name, {}) for name in SOURCES})


@contextmanager
def runs_read():
    """The backups, restores and verifications read from the database meanwhile (one per row)."""
    read = []

    def count(sender, **kwargs):
        read.append(sender)

    for model in (Backup, Restore, Verification):
        post_init.connect(count, sender=model)
    try:
        yield read
    finally:
        for model in (Backup, Restore, Verification):
            post_init.disconnect(count, sender=model)


def cost(client, path):
    """(SQL queries, runs read) of one request."""
    with CaptureQueriesContext(connection) as captured, runs_read() as read:
        assert client.get(path).status_code in (200, 503)  # health: a source is never backed up
    return len(captured), len(read)


@pytest.mark.parametrize("path", HISTORY_PAGES)
def test_a_history_page_costs_the_same_with_a_short_or_long_mixed_history(db, mixed_sources, client, path):
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    add_mixed_history(SHORT)
    short = cost(client, path)[0]  # 30 rows shown
    add_mixed_history(LONG - SHORT, SHORT)
    long = cost(client, path)[0]  # a full page: 50 or 100 rows
    assert short == long <= 10, (short, long)


def test_a_backup_page_takes_a_fixed_number_of_queries(db, mixed_sources, client):
    """Whatever the backup holds: artifacts (a download link each), verifications, a rehearsal, restores,
    the user who started it."""
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    add_mixed_history(LONG)
    rich = Backup.objects.get(backup_id="backup_20260102_000000")  # verified, damaged, rehearsed, restored
    lean = Backup.objects.get(backup_id="backup_20260102_000004")  # none of that, by the schedule
    Backup.objects.filter(pk=rich.pk).update(created_by=User.objects.get(username="mixed1"))
    BackupArtifact.objects.bulk_create(BackupArtifact(backup=rich, name=f"extra{n}", component="uploads", sha256="0")
                                       for n in range(5))
    page = f"/admin/backups_app/backup/{rich.pk}/change/"
    assert "extra4" in client.get(page).content.decode()  # and what a first page reads once is read
    rich_cost = cost(client, page)[0]
    lean_cost = cost(client, f"/admin/backups_app/backup/{lean.pk}/change/")[0]
    assert rich_cost == lean_cost <= 10, (rich_cost, lean_cost)


@pytest.mark.parametrize("path", ["/metrics", "/api/system/health"])
def test_metrics_and_health_read_the_same_with_a_short_or_long_mixed_history(db, mixed_sources, path):
    """Same queries and same runs read: the newest per source, the damaged ones, never the history."""
    api = token_client(staff_user("root", superuser=True))
    add_mixed_history(SHORT)
    short = cost(api, path)
    add_mixed_history(LONG - SHORT, SHORT)
    long = cost(api, path)
    assert short == long and long[0] <= 10, (short, long)
