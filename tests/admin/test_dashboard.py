"""The dashboard on the admin index (issue 17 §1): per component the newest good backup and its
age against BACKUP_MAX_AGE_HOURS, the size trend, the last rehearsal with its RTO and probe
recall, the next scheduled backup and the offsite copy; storage, health and running work. Real
backups of a real stack; a fixed number of queries whatever the history holds."""

import os
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db.models import Sum
from django.utils import timezone
from django_q.models import Schedule

from backups_app.formatting import format_date
from backups_app.models import Backup, BackupArtifact, RunStatus, Verification
from backups_app.services import backups, dashboard, verification
from backups_app.services.schedules import BACKUP_TASK, setup_schedules
from tests.admin.conftest import staff_member
from tests.admin.test_history_queries import add_history
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db

INDEX = "/admin/"


def rows_by_name(report):
    return {row.name: row for row in report["rows"]}


def age(backup, hours):
    Backup.objects.filter(pk=backup.pk).update(finished_at=timezone.now() - timedelta(hours=hours))


def test_the_index_shows_each_component_its_newest_backup_rehearsal_and_next_run(admin_stack, superuser_client):
    setup_schedules()
    made = [backups.create_backup() for _ in range(3)]
    rehearsal = verification.verify(made[-1].backup_id, deep=True)
    assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error

    page = superuser_client.get(INDEX).content.decode()
    assert "Site administration" in page and 'id="backup-dashboard"' in page  # the app list stays
    assert page.index('id="backup-dashboard"') < page.index('id="content-main"') and 'class="app-backups_app' in page
    next_backup = Schedule.objects.filter(func=BACKUP_TASK).order_by("next_run").first().next_run
    for name in ("uploads", "sqlite"):
        row = re.search(rf'<tr class="source" data-source="{name}">(.*?)</tr>', page, re.S).group(1)
        assert made[-1].backup_id in row and "fresh-ok" in row and " ago" in row
        assert row.count("<polyline") == 1
        assert f"/admin/backups_app/verification/{rehearsal.pk}/change/" in row and "✔ passed" in row
        assert f"<td>{format_date(next_backup)}</td>" in row
    assert 'href="/admin/backups_app/backup/backup-now/"' in page
    assert 'href="/admin/backups_app/backup/retention/"' in page
    assert "Nothing is pending or running." in page


def test_age_is_green_amber_red_against_max_age_and_damaged_backups_do_not_count(demo_stack, settings):
    settings.BACKUP_MAX_AGE_HOURS = 24
    older, newer = backups.create_backup(), backups.create_backup()
    age(older, 30)
    age(newer, 10)
    row = rows_by_name(dashboard.gather())["uploads"]
    assert (row.newest.pk, row.freshness, row.problem) == (newer.pk, "ok", "")
    age(newer, 20)  # past 3/4 of 24 h
    assert rows_by_name(dashboard.gather())["uploads"].freshness == "amber"

    # The newer one fails its verification: the older one (30 h) is the newest good backup → red.
    Verification.objects.create(backup=newer, source_backup_id=newer.backup_id, status=RunStatus.FAILED,
                                finished_at=timezone.now())
    row = rows_by_name(dashboard.gather())["uploads"]
    assert (row.newest.pk, row.freshness) == (older.pk, "red")
    assert f"damaged backup(s) {newer.backup_id}" in row.problem and "older than 24 h" in row.problem


def test_a_component_without_backups_is_red_and_says_so(demo_stack, superuser_client):
    report = dashboard.gather()
    assert {row.name: (row.newest, row.freshness) for row in report["rows"]} == {
        "uploads": (None, "red"), "sqlite": (None, "red")}
    page = superuser_client.get(INDEX).content.decode()
    assert page.count("no backup yet</span>") == 2 and "no completed backup yet" in page


def test_the_size_trend_is_each_components_stored_bytes_per_backup(demo_stack, settings):
    uploads_dir, _sqlite = demo_stack
    made = []
    for n in range(dashboard.TREND_BACKUPS + 3):
        # Random bytes: zstd cannot shrink them, so each set grows by 1 KiB (a repeated pattern
        # compressed to a few hundred bytes whose size moved with the tar headers' times).
        (uploads_dir / "docs" / "grow.bin").write_bytes(os.urandom(1024 * n))
        made.append(backups.create_backup())
    trend = rows_by_name(dashboard.gather())["uploads"].sizes
    expected = [BackupArtifact.objects.filter(backup=b, component="uploads").aggregate(s=Sum("size_bytes"))["s"]
                for b in made[-dashboard.TREND_BACKUPS:]]
    assert trend == expected and len(trend) == dashboard.TREND_BACKUPS
    assert trend[-1] > trend[0]


def test_offsite_copy_state_and_storage_use(demo_stack, settings, tmp_path, superuser_client):
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "far")}}}
    backup = backups.create_backup()
    assert backup.offsite_status == "verified"
    report = dashboard.gather()
    assert report["storage"]["offsite"] == str(tmp_path / "far")
    assert report["storage"]["used_bytes"] == backup.size_bytes and report["storage"]["sets"] == 1
    assert report["storage"]["free_bytes"] > 0
    page = superuser_client.get(INDEX).content.decode()
    offsite = re.findall(r'<td class="offsite">(.*?)</td>', page)
    assert len(offsite) == 2 and all(cell.startswith("Verified ") for cell in offsite)


def test_running_work_lists_the_pending_and_running_runs(demo_stack, superuser_client):
    done = backups.create_backup()
    running = Backup.objects.create(backup_id="backup_20260101_000000", status=RunStatus.IN_PROGRESS,
                                    components=["uploads"])
    check = Verification.objects.create(backup=done, source_backup_id=done.backup_id, status=RunStatus.PENDING)
    assert [(r["model"], r["pk"], r["status"]) for r in dashboard.running_work()] == [
        ("verification", check.pk, "pending"), ("backup", running.pk, "in_progress")]
    page = superuser_client.get(INDEX).content.decode()
    assert f'href="/admin/backups_app/backup/{running.pk}/change/">backup_20260101_000000</a>' in page
    assert f'href="/admin/backups_app/verification/{check.pk}/change/">{done.backup_id}</a>' in page


def test_only_those_who_may_see_backups_get_it_and_buttons_follow_permissions(demo_stack, client):
    client.force_login(staff_member())
    page = client.get(INDEX).content.decode()
    assert 'id="backup-dashboard"' not in page and "Site administration" in page
    client.force_login(staff_member("view_backup"))
    page = client.get(INDEX).content.decode()
    assert 'id="backup-dashboard"' in page and "Back up now" not in page and "Retention" in page
    client.force_login(staff_member("view_backup", "add_backup"))
    assert "Back up now" in client.get(INDEX).content.decode()


def test_the_dashboard_takes_a_fixed_number_of_queries(demo_stack, client, django_assert_max_num_queries):
    setup_schedules()
    add_history(1000)
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    with django_assert_max_num_queries(10):
        page = client.get(INDEX).content.decode()
    assert page.count('<tr class="source"') == 2


def test_the_rehearsal_shows_probe_recall_per_collection(qdrant_path, sources, superuser_client):
    from tests.components import test_qdrant as qdrant_data

    qdrant_data.fill(qdrant_path, 300)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup()
    rehearsal = verification.verify(backup.backup_id, deep=True)
    assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error
    row = rows_by_name(dashboard.gather())["qdrant"]
    assert row.rehearsal.pk == rehearsal.pk and row.recall == {"docs": 1.0}
    assert row.rehearsal_result["seconds"] == rehearsal.results["qdrant"]["seconds"] > 0
    page = superuser_client.get(INDEX).content.decode()
    assert '<td class="recall">docs 1.00</td>' in page
