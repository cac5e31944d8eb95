"""Live progress in a real browser (issue 17 §2): a backup, then a restore, of several seconds run
by a real worker process (qcluster) beside a runserver process, sharing a file SQLite app database;
the run's page (and for the backup the list) shows the bytes moving without reloading, at least
two distinct values before it completes, and the fields the worker fills in when it takes the run
(started at, host, worker) come in place too. The worker sleeps 0.25 s per MiB written (the
backup) or read (the restore) through BACKUP_TEST_SLOW_AT, so the run lasts."""

import os
import time

import pytest

from tests import stacks
from tests.api.test_live_cycle import manage, start, stop
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
MIB = 1024 * 1024


@pytest.fixture
def start_site(tmp_path):
    """``start_site(slow_at)``: (the site's URL, its environment), with 24 MiB of uploads to back up
    and the worker slowed at fault point ``slow_at``."""
    running = []

    def start_site(slow_at):
        uploads = tmp_path / "uploads"
        engine, options = stacks.uploads_source(uploads, {f"big{n}.bin": os.urandom(12 * MIB) for n in range(2)})
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backupsite.settings", "VAR_DIR": str(tmp_path / "var"),
               "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}", "BACKUP_DIR": str(tmp_path / "backups"),
               "UPLOADS_DIR": options["path"], "BACKUP_COMPRESSION": "zstd", "Q_WORKERS": "1",
               "BACKUP_TEST_SLOW_AT": slow_at, "BACKUP_TEST_SLOW_SECONDS": "0.25",
               "DJANGO_SUPERUSER_PASSWORD": "s3cret-pw"}
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.invalid")
        port = free_port()
        running.append(start(env, tmp_path, "server", "runserver", "--noreload", f"127.0.0.1:{port}"))
        running.append(start(env, tmp_path, "worker", "qcluster"))
        return f"http://127.0.0.1:{port}", env

    yield start_site
    for process in running:
        stop(process)


def log_in(page, site):
    deadline = time.monotonic() + 30
    while True:  # runserver starting
        try:
            page.goto(f"{site}/admin/login/")
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    page.fill("#id_username", "ops")
    page.fill("#id_password", "s3cret-pw")
    page.click("input[type=submit]")


def uploads_done(page):
    """The bytes done the page shows for uploads (None before its row is there)."""
    cell = page.locator('.run-progress tr[data-component="uploads"]')
    return int(cell.get_attribute("data-bytes-done")) if cell.count() else None


def watch_the_run(page, screenshot, shot, running=lambda page: None):
    """On a run's page just opened: wait until the worker runs it with bytes done for uploads, then
    check ``running(page)`` and see the bytes move in place until it completes (``shot``: the
    screenshots' name prefix)."""
    page.wait_for_selector(".run-progress")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    started_at = page.locator(".field-started_at .readonly")
    queued = started_at.inner_text() == "-"  # rendered before the worker took it (the worker starts slowly)

    seen, shots = set(), 0
    deadline = time.monotonic() + 120  # the worker process starting on a loaded machine, then the run
    while 'data-state="running"' not in page.content() or not uploads_done(page):
        assert time.monotonic() < deadline, "the run never showed as running with bytes done"
        time.sleep(0.2)
    # Filled in place when the worker took the run (by the poll when the page showed it queued).
    assert started_at.inner_text() != "-", queued
    assert page.locator(".field-host .readonly").inner_text() != "-", queued
    assert " pid " in page.locator(".field-worker .readonly").inner_text(), queued
    running(page)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and page.locator('.run-live[data-active="1"]').count():
        done = uploads_done(page)
        if done and done not in seen:
            seen.add(done)
            if shots < 2:
                shots += 1
                screenshot(page, f"{shot}-0{shots}-running")
        time.sleep(0.3)
    assert len(seen) >= 2, seen  # the bar moved while the page stayed
    # The values came in place: the page was loaded once only, until the run ended.
    assert len(navigations) <= 1, navigations

    page.wait_for_selector("text=finished: completed")
    assert page.locator('.run-progress tr[data-component="uploads"]').get_attribute("data-state") == "done"
    assert "100%" in page.locator(".run-progress").inner_text()
    screenshot(page, f"{shot}-03-completed")


def test_a_running_backup_shows_its_progress_moving(start_site, chromium_page, screenshot):
    site, _env = start_site("write.uploads.tar.zst.mib")
    page = chromium_page
    log_in(page, site)
    page.goto(f"{site}/admin/backups_app/backup/backup-now/")
    page.click("text=Start backup")
    watch_the_run(page, screenshot, "progress")

    # The list refreshes running rows too: a second backup, watched from the list.
    page.goto(f"{site}/admin/backups_app/backup/backup-now/")
    page.click("text=Start backup")
    page.goto(f"{site}/admin/backups_app/backup/")
    running = page.locator('.run-live[data-active="1"] .progress-bar')
    running.first.wait_for()
    values, deadline = set(), time.monotonic() + 120
    while time.monotonic() < deadline and page.locator('.run-live[data-active="1"]').count():
        if running.count():
            values.add(running.first.get_attribute("aria-valuenow"))
            if len(values) == 2:
                screenshot(page, "progress-04-list-running")
        time.sleep(0.3)
    assert len(values) >= 2, values
    assert page.locator('.run-live[data-active="1"]').count() == 0


def test_a_running_restore_shows_its_progress_moving(start_site, chromium_page, screenshot, tmp_path):
    """The restore wizard, then the restore's page while the worker loads the uploads (0.25 s per
    MiB read: the plan's checksum pass and the load), the live folder replaced at the end."""
    site, env = start_site("read.uploads.tar.zst.mib")
    backup_id = manage(env, "backup", "--components", "uploads").split()[-1]
    uploads = tmp_path / "uploads"
    kept = {path.name: path.read_bytes() for path in uploads.iterdir()}
    (uploads / "big0.bin").unlink()
    (uploads / "after.txt").write_text("written after the backup")
    page = chromium_page
    log_in(page, site)
    page.goto(f"{site}/admin/backups_app/backup/{backup_id}/restore/")
    page.click("text=Plan the restore")
    page.fill("input[name=confirmation]", backup_id)
    page.click("text=Restore now")

    def loading(page):  # the plan and the safety backup, taken before the load, came in place too
        assert page.locator(".field-safety_backup .readonly a").inner_text().startswith("backup_")
        assert page.locator(".field-plan_view table.plan-table").count() == 1

    watch_the_run(page, screenshot, "restore-progress", loading)
    assert {path.name: path.read_bytes() for path in uploads.iterdir()} == kept
