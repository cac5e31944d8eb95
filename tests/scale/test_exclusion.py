"""A backup and a restore cannot start together: the check and the claim are one atomic step.
Real manage.py processes on a PostgreSQL catalog, each paused (SIGSTOP through the test hook)
inside its check-and-claim: the other one must wait for it, then be refused; exactly one runs."""

import time

import pytest

from tests.scale.site import Site


def paused(site, name, *args, points):
    """manage.py ARGS started and left stopped at the first of ``points``."""
    process = site.start(name, *args, env={"BACKUP_TEST_STOP_AT": ",".join(points)})
    site.wait_for(lambda: Site.stopped_pids(process) or process.poll() is not None, f"{name} paused", 120)
    assert process.poll() is None, site.log(name)
    return process


def resume_paused(site, process, name):
    """Wait until ``process`` is stopped at its next point, then let it go on."""
    site.wait_for(lambda: Site.stopped_pids(process), f"{name} paused again", 120)
    site.resume(process)


def blocked(site, process, name, arrived):
    """``process`` got to its check (``arrived()``: the SQL that shows it) and is still waiting 2 s
    later: it could not check while the other process held the claim."""
    site.wait_for(lambda: arrived() or process.poll() is not None, f"{name} at its check", 120)
    time.sleep(2)
    return process.poll() is None and not Site.stopped_pids(process)


def restore_id_issued(site):
    return site.query("SELECT count(*) FROM backups_app_issuedrunid WHERE run_id LIKE 'restore_%%'") == [(1,)]


def backup_pending(site):
    return site.query("SELECT count(*) FROM backups_app_backup WHERE status = 'pending'") == [(1,)]


@pytest.fixture
def source(site):
    return site.manage("backup").stdout.strip()


def test_a_restore_waits_for_a_backup_claiming_and_is_refused(site, source):
    backup = paused(site, "backup", "backup", points=["backup.claiming", "backup.before_manifest"])
    restore = site.start("restore", "restore", source, "--components", "config", "--yes")
    assert blocked(site, restore, "restore", lambda: restore_id_issued(site)), site.log("restore")

    site.resume(backup)  # claims, then stops again mid-backup (in progress)
    assert restore.wait(timeout=120) == 1
    assert "Restore refused: backup backup_" in site.log("restore") and "is running" in site.log("restore")
    resume_paused(site, backup, "backup")
    assert backup.wait(timeout=120) == 0, site.log("backup")

    assert site.query("SELECT count(*) FROM backups_app_restore") == [(0,)]
    assert sorted(status for status, *_ in site.runs().values()) == ["completed", "completed"]
    assert site.query("SELECT name FROM backups_app_operationlock") == []


def test_a_backup_waits_for_a_restore_claiming_and_is_refused(site, source):
    restore = paused(site, "restore", "restore", source, "--components", "config", "--yes",
                     points=["restore.admitted", "restore.applied"])
    backup = site.start("backup", "backup")
    assert blocked(site, backup, "backup", lambda: backup_pending(site)), site.log("backup")

    site.resume(restore)  # takes the lock, then stops again after applying
    assert backup.wait(timeout=120) != 0
    resume_paused(site, restore, "restore")
    assert restore.wait(timeout=120) == 0, site.log("restore")

    ((restore_id, status),) = site.query("SELECT restore_id, status FROM backups_app_restore")
    assert status == "completed"
    refused = {i: run for i, run in site.runs().items() if i != source}
    ((status, error, worker, _log),) = refused.values()
    assert status == "failed" and error.startswith(f"Backup refused: {restore_id} is running")
    assert site.query("SELECT name FROM backups_app_operationlock") == []
