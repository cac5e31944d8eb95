"""scripts/backup/schedule.sh: the cron file it installs is valid cron, its jobs really run a
backup, a prune and a rehearsal when executed the way cron runs them, and status/remove/
health-check behave."""

import os
import re
import sqlite3
import stat
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from croniter import croniter

from tests import stacks

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "backup" / "schedule.sh"


@pytest.fixture
def env(tmp_path):
    demo = stacks.files_stack(tmp_path / "stack")
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}",
           "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_SPOOL_DIR": str(tmp_path / "spool"),
           **stacks.environment(demo), "BACKUP_HEARTBEAT_SECONDS": "0",  # UPLOADS_DIR, SQLITE_PATHS
           "BACKUP_CRON_FILE": str(tmp_path / "cron.d" / "rag-backups"), "BACKUP_CRON_LOG": str(tmp_path / "cron.log"),
           "BACKUP_CRON_USER": "backup", "BACKUP_SCHEDULE_DAILY": "15 1 * * *", "BACKUP_SCHEDULE_MONTHLY": "",
           "BACKUP_MIN_FREE_MB": "1", "BACKUP_HEALTH_CHECK_WORKER": "0"}
    for name in ("POSTGRES_DB", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY"):
        env.pop(name, None)
    (tmp_path / "cron.d").mkdir()
    return env


@pytest.fixture
def migrated(env):
    done = subprocess.run([str(ROOT / ".venv/bin/python"), "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return env


def script(env, *args):
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)


def cron_jobs(path):
    """(schedule, user, command) of each job line of a /etc/cron.d file."""
    jobs = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or re.match(r"^[A-Z]+=", line) or not line.strip():
            continue
        fields = line.split(None, 6)
        jobs.append((" ".join(fields[:5]), fields[5], fields[6]))
    return jobs


def test_installed_cron_jobs_run_backups_prunes_and_rehearsals(migrated, tmp_path):
    env = migrated
    done = script(env, "install-cron")
    assert done.returncode == 0, done.stderr
    cron_file = Path(env["BACKUP_CRON_FILE"])
    assert stat.S_IMODE(cron_file.stat().st_mode) == 0o644
    jobs = cron_jobs(cron_file)
    assert [(when, user) for when, user, _ in jobs] == [
        ("15 1 * * *", "backup"), ("0 3 * * 0", "backup"), ("0 5 * * 0", "backup"), ("*/5 * * * *", "backup")]
    assert all(croniter.is_valid(when) for when, _u, _c in jobs)
    assert "SHELL=/bin/sh" in cron_file.read_text()

    # Run the daily and rehearsal commands the way cron does: /bin/sh -c with the job's text.
    for _when, _user, command in (jobs[0], jobs[2], jobs[3]):
        ran = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, Path(env["BACKUP_CRON_LOG"]).read_text()
    log = Path(env["BACKUP_CRON_LOG"]).read_text()
    backup_id = re.search(r"(backup_\d{8}_\d{6}(?:_\d+)?): completed", log).group(1)
    assert f"rehearsal of {backup_id}: completed" in log and "stale run(s) marked failed" in log
    with closing(sqlite3.connect(tmp_path / "app.sqlite3")) as conn:
        assert conn.execute("SELECT \"trigger\", description FROM backups_app_backup").fetchall() == [
            ("schedule", "daily backup")]
        assert conn.execute("SELECT kind, status FROM backups_app_verification").fetchall() == [("deep", "completed")]

    status = script(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "15 1 * * * backup" in status.stdout and "OK   backups" in status.stdout
    assert script(env, "health-check").returncode == 0

    assert script(env, "remove").returncode == 0 and not cron_file.exists()
    assert "Nothing to remove" in script(env, "remove").stdout


def test_health_check_fails_without_a_backup(migrated):
    done = script(migrated, "health-check")
    assert done.returncode == 1
    assert "FAIL backups" in done.stdout and "no completed backup yet" in done.stdout


def test_refuses_bad_schedules_and_foreign_cron_files(env):
    bad = script({**env, "BACKUP_SCHEDULE_WEEKLY": "weekly"}, "install-cron")
    assert bad.returncode == 2 and "'weekly' is not a 5-field cron expression" in bad.stderr
    Path(env["BACKUP_CRON_FILE"]).write_text("0 1 * * * root /usr/local/bin/something-else\n")
    assert script(env, "remove").returncode == 2
    assert Path(env["BACKUP_CRON_FILE"]).exists()
    assert script(env, "frobnicate").returncode == 2
