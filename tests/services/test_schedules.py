"""django-q2 schedules: written idempotently from settings, and a due schedule really runs a
backup through a qcluster started here against a file-based SQLite app database."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from croniter import croniter
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from backups_app.models import AuditEvent
from backups_app.services.schedules import SWEEP_NAME, setup_schedules
from tests import stacks

ROOT = Path(__file__).resolve().parents[2]
NAMES = {"backups: daily backup", "backups: weekly backup", "backups: monthly backup",
         "backups: restore rehearsal", SWEEP_NAME}


@pytest.mark.django_db
def test_setup_schedules_is_idempotent_and_follows_settings(settings):
    first = setup_schedules()
    assert set(first["created"]) == NAMES
    daily = Schedule.objects.get(name="backups: daily backup")
    assert (daily.schedule_type, daily.cron, daily.func, daily.args) == (
        Schedule.CRON, "0 2 * * *", "backups_app.tasks.scheduled_backup", "'daily'")
    assert daily.next_run == croniter("0 2 * * *", timezone.now()).get_next(datetime)
    assert Schedule.objects.get(name="backups: monthly backup").cron == "0 4 1 * *"
    assert Schedule.objects.get(name=SWEEP_NAME).minutes == 5

    again = setup_schedules()
    assert set(again.pop("unchanged")) == NAMES and again == {"created": [], "updated": [], "removed": []}
    assert Schedule.objects.count() == 5

    settings.BACKUP_SCHEDULE_DAILY = "30 1 * * *"
    settings.BACKUP_SCHEDULE_MONTHLY = ""
    Schedule.objects.filter(name="backups: weekly backup").update(cron="0 9 * * *")  # edited by hand
    outcome = setup_schedules()
    assert outcome["updated"] == ["backups: daily backup", "backups: weekly backup"]
    assert outcome["removed"] == ["backups: monthly backup"]
    daily.refresh_from_db()
    assert daily.cron == "30 1 * * *" and daily.next_run.astimezone(dt_timezone.utc).minute == 30
    assert Schedule.objects.get(name="backups: weekly backup").cron == "0 3 * * 0"
    assert not Schedule.objects.filter(name="backups: monthly backup").exists()
    events = AuditEvent.objects.filter(action="schedule.setup")
    assert events.count() == 2  # the unchanged run records nothing
    assert events.first().details["removed"] == ["backups: monthly backup"]


@pytest.mark.django_db
def test_a_bad_cron_setting_is_refused_with_its_name(settings):
    settings.BACKUP_SCHEDULE_WEEKLY = "every sunday"
    with pytest.raises(CommandError, match="BACKUP_SCHEDULE_WEEKLY='every sunday' is not a cron expression"):
        call_command("setup_schedules")
    assert not Schedule.objects.exists()


def _manage(env, *args):
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_due_schedule_runs_a_backup_through_a_real_qcluster(tmp_path):
    demo = stacks.files_stack(tmp_path / "stack")
    app_db = tmp_path / "app.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.qcluster_settings", "VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite:///{app_db}", "BACKUP_DIR": str(tmp_path / "backups"),
           "BACKUP_SPOOL_DIR": str(tmp_path / "spool"), **stacks.environment(demo),  # UPLOADS_DIR, SQLITE_PATHS
           "BACKUP_HEARTBEAT_SECONDS": "0", "BACKUP_MIN_FREE_MB": "1"}
    for name in ("POSTGRES_DB", "DJANGO_SECRET_KEY", "Q_REDIS_URL"):
        env.pop(name, None)
    _manage(env, "migrate", "--noinput", "-v0")
    assert "created   backups: daily backup" in _manage(env, "setup_schedules")
    _manage(env, "shell", "-c", "from django.utils import timezone; from django_q.models import Schedule; "
                                "Schedule.objects.filter(name='backups: daily backup').update(next_run=timezone.now())")

    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline, row = time.monotonic() + 90, None
        while time.monotonic() < deadline and cluster.poll() is None:
            with closing(sqlite3.connect(app_db, timeout=30)) as conn:
                row = conn.execute(
                    'SELECT backup_id, status, "trigger", description FROM backups_app_backup').fetchone()
            if row and row[1] in ("completed", "failed"):
                break
            time.sleep(0.5)
        # Asked while the cluster runs; checked below, after the backup.
        health = subprocess.run([sys.executable, "manage.py", "backup_health", "--json"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(cluster.pid, signal.SIGKILL)
        _out, err = cluster.communicate(timeout=30)
    assert row is not None, f"no backup was started by the schedule; qcluster said:\n{err[-3000:]}"
    backup_id, status, trigger, description = row
    assert (status, trigger, description) == ("completed", "schedule", "daily backup")
    assert (tmp_path / "backups" / backup_id / "metadata.json").is_file()
    with closing(sqlite3.connect(app_db)) as conn:
        next_run = conn.execute("SELECT next_run FROM django_q_schedule WHERE name = ?",
                                ("backups: daily backup",)).fetchone()[0]
        audit = conn.execute("SELECT action, target FROM backups_app_auditevent").fetchall()
    # With the cluster running and a fresh backup every health check passes, the worker's included.
    assert health.returncode == 0 and json.loads(health.stdout)["checks"]["worker"] == {"ok": True}, health.stdout
    assert datetime.fromisoformat(next_run).replace(tzinfo=dt_timezone.utc) > datetime.now(dt_timezone.utc)
    assert ("backup.create", backup_id) in audit
