"""GET /api/system/health (200 → 503) and GET /metrics (values after real runs), their access
rules (addresses, authenticators, staff sessions and API tokens), and `manage.py backup_health`
with the same checks."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule
from prometheus_client.parser import text_string_to_metric_families

from backups_app.models import Backup, RunStatus, Verification
from backups_app.services import backups, restores, retention, verification
from backups_app.services.schedules import SWEEP_NAME, setup_schedules
from tests.api.conftest import staff_user, token_client
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db


@pytest.fixture
def healthy(demo_stack, settings):
    settings.BACKUP_MIN_FREE_MB = 1
    setup_schedules()
    return backups.create_backup()


def health(client, **extra):
    response = client.get("/api/system/health", **extra)
    return response.status_code, response.json()


def test_health_is_200_when_everything_is_fresh(client, healthy):
    status, body = health(client)
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["backups"]["components"]["uploads"]["backup_id"] == healthy.backup_id
    assert body["checks"]["storage"]["free_mb"] > 0
    assert body["checks"]["rehearsal"] == {"ok": True, "note": "no restore rehearsal yet"}
    call_command("backup_health")  # exit code 0


def test_health_is_503_when_the_newest_backup_is_too_old(client, healthy, settings):
    Backup.objects.filter(pk=healthy.pk).update(finished_at=timezone.now() - timedelta(hours=27))
    status, body = health(client)
    assert status == 503 and body["status"] == "fail"
    assert "older than 26 h" in body["checks"]["backups"]["components"]["sqlite"]["error"]
    with pytest.raises(CommandError, match="unhealthy: backups"):
        call_command("backup_health")
    settings.BACKUP_MAX_AGE_HOURS = 48
    assert health(client)[0] == 200


def test_health_is_503_when_storage_is_unreachable(client, healthy, settings, tmp_path):
    gone = tmp_path / "unmounted"
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(gone)}}}
    status, body = health(client)
    assert status == 503
    assert "backup storage is unreachable" in body["checks"]["storage"]["error"]
    assert body["checks"]["backups"]["ok"]


def test_a_fresh_install_says_no_backup_yet_not_unreachable(client, demo_stack, settings, tmp_path):
    settings.BACKUP_MIN_FREE_MB = 1
    setup_schedules()
    folder = tmp_path / "not-created-yet" / "backups"
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(folder)}}}
    status, body = health(client)
    assert status == 503  # no backup yet is still unhealthy, but the storage is not to blame
    assert body["checks"]["storage"]["ok"] and "no backup yet" in body["checks"]["storage"]["note"]
    assert body["checks"]["backups"]["components"]["uploads"]["error"] == "no completed backup yet"
    assert backups.create_backup().status == RunStatus.COMPLETED  # the first backup creates the folder
    assert health(client)[0] == 200

    (tmp_path / "a-file").write_text("")  # a folder that cannot be created
    settings.STORAGES = {**settings.STORAGES, "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "a-file" / "backups")}}}
    Backup.objects.all().delete()
    storage = health(client)[1]["checks"]["storage"]
    assert not storage["ok"] and storage["error"].endswith("a-file is not a folder")


def test_health_is_503_without_a_running_scheduler_or_after_a_failed_rehearsal(client, healthy, settings):
    Schedule.objects.filter(name=SWEEP_NAME).update(next_run=timezone.now() - timedelta(minutes=10))
    status, body = health(client)
    assert status == 503 and "is `python manage.py qcluster` running?" in body["checks"]["worker"]["error"]
    Schedule.objects.filter(name=SWEEP_NAME).update(next_run=timezone.now() + timedelta(minutes=4))
    Verification.objects.create(backup=healthy, source_backup_id=healthy.backup_id, kind="deep",
                                status=RunStatus.FAILED, error="uploads: counts differ", finished_at=timezone.now())
    status, body = health(client)
    assert status == 503 and body["checks"]["rehearsal"]["error"] == "uploads: counts differ"


def test_health_fails_with_too_little_free_space(client, healthy, settings):
    settings.BACKUP_MIN_FREE_MB = 10 ** 12
    status, body = health(client)
    assert status == 503 and "less than BACKUP_MIN_FREE_MB" in body["checks"]["storage"]["error"]


def allow_with_header(request):
    return request.headers.get("X-Test-Token") == "s3cret"


def test_monitoring_access_rules(client, healthy, settings, django_user_model):
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics", **remote).status_code == 403
    assert client.get("/api/system/health", **remote).status_code == 403
    settings.BACKUP_METRICS_ALLOW = "127.0.0.1, 10.0.0.0/8"
    assert client.get("/metrics", **remote).status_code == 200
    settings.BACKUP_METRICS_ALLOW = "127.0.0.1"
    settings.BACKUP_MONITORING_AUTHENTICATORS = ["tests.api.test_monitoring.allow_with_header"]
    assert client.get("/metrics", HTTP_X_TEST_TOKEN="s3cret", **remote).status_code == 200
    assert client.get("/metrics", HTTP_X_TEST_TOKEN="wrong", **remote).status_code == 403
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    assert client.get("/metrics", **remote).status_code == 200
    assert client.post("/metrics").status_code == 405


def samples(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def test_metrics_values_after_runs(client, demo_stack, sources, settings, tmp_path):
    first = backups.create_backup()
    second = backups.create_backup(["sqlite"])
    restore = restores.start_restore(first.backup_id, ["sqlite"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    verification.verify(first.backup_id, deep=True)
    sources(uploads=(ENGINES["uploads"], {"path": str(tmp_path / "missing")}),
            sqlite=(ENGINES["sqlite"], {"paths": [str(demo_stack[1])]}))
    assert backups.create_backup(["uploads"]).status == RunStatus.FAILED

    values = samples(client)
    assert values[("backup_runs_total", (("status", "completed"),))] == 2
    assert values[("backup_runs_total", (("status", "failed"),))] == 1
    assert values[("restore_runs_total", (("status", "completed"),))] == 1
    assert values[("restore_runs_total", (("status", "rolled_back"),))] == 0
    first.refresh_from_db()
    second.refresh_from_db()
    assert values[("backup_last_success_timestamp_seconds", (("component", "uploads"),))] == \
        first.finished_at.timestamp()
    assert values[("backup_last_success_timestamp_seconds", (("component", "sqlite"),))] == \
        second.finished_at.timestamp()
    assert values[("backup_size_bytes", ())] == second.size_bytes > 0
    assert values[("backup_duration_seconds", ())] == second.duration.total_seconds()
    assert values[("backup_verification_success", (("kind", "deep"),))] == 1
    assert values[("backup_rehearsal_restore_seconds", (("component", "sqlite"),))] > 0

    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_LAST = 0, 1
    assert retention.prune()["deleted"] == []  # first holds the only copy of uploads
    backups.delete_backup(first.backup_id)
    assert samples(client)[("backup_runs_total", (("status", "completed"),))] == 2  # counters never go down


def test_metrics_accept_a_staff_api_token_from_anywhere(pg_stack):
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    client = token_client(staff_user("prometheus"))
    assert client.get("/metrics", **remote).status_code == 200
    assert Client(HTTP_AUTHORIZATION="Bearer bk_wrong").get("/metrics", **remote).status_code == 403
