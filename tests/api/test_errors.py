"""Every API error keeps the API's shape: a misconfigured source (POSTGRES_PORT=abc) is the
operator's 503 ``misconfigured`` naming the variable, never an HTML 500 on unrelated errors; a
task broker that refuses work fails the run, answers 503 and is counted in /metrics."""

from pathlib import Path

import pytest
from django.core.checks import run_checks
from django_q.conf import Conf
from prometheus_client.parser import text_string_to_metric_families

from backups_app.models import Backup, RunStatus
from backupsite.sources import build_backup_sources
from tests.api.conftest import staff_user, token_client
from tests.servers import free_port
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db
API = "/api/system"


@pytest.fixture
def bad_port(settings):
    settings.BACKUP_SOURCES = build_backup_sources({"POSTGRES_DB": "app", "POSTGRES_PORT": "abc"}, Path("/demo"))


def test_a_misconfigured_source_leaves_every_error_in_the_api_shape(client, bad_port):
    anonymous = client.get(f"{API}/backups")
    assert anonymous.status_code == 401 and anonymous["Content-Type"].startswith("application/json")
    assert anonymous.json()["error"] == "not_authenticated"

    staff = token_client(staff_user("ops", superuser=True))
    assert staff.get(f"{API}/backup/backup_20990101_000000").json() == {
        "error": "not_found", "detail": "Backup backup_20990101_000000 does not exist."}
    backup = staff.post(f"{API}/backup", {}, content_type="application/json")
    assert backup.status_code == 503
    assert backup.json()["error"] == "misconfigured" and "'port' (POSTGRES_PORT)" in backup.json()["detail"]
    assert "expected a whole number, got 'abc'" in backup.json()["detail"]

    health = client.get(f"{API}/health")  # from loopback, which may monitor
    assert health.status_code == 503
    assert set(health.json()) == {"error", "detail"} and health.json()["error"] == "misconfigured"
    assert "POSTGRES_PORT" in {e.id: e.msg for e in run_checks()}["backups.E001"]


def test_a_broker_refusal_fails_the_run_answers_503_and_is_counted(client, sources, tmp_path, monkeypatch):
    (tmp_path / "uploads").mkdir()
    sources(uploads=(ENGINES["uploads"], {"path": str(tmp_path / "uploads")}))
    # A Redis broker nobody listens on: django-q2 raises when it hands the task over.
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{free_port()}/0")
    response = token_client(staff_user("ops", superuser=True)).post(f"{API}/backup", {"components": ["uploads"]},
                                                                    content_type="application/json")
    assert response.status_code == 503 and response.json()["error"] == "unavailable", response.json()
    assert "Is the django-q2 broker reachable?" in response.json()["detail"]
    backup = Backup.objects.get()
    assert backup.status == RunStatus.FAILED and "Could not hand the run to the task queue" in backup.error

    metrics = client.get("/metrics").content.decode()
    failed = {s.labels.get("status"): s.value for family in text_string_to_metric_families(metrics)
              for s in family.samples if s.name == "backup_runs_total"}
    assert failed[RunStatus.FAILED] == 1
