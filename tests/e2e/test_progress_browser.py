"""Live progress in a real browser (issue 17 §2): a backup of several seconds run by a real
worker process (qcluster) beside a runserver process, sharing a file SQLite app database; its page
and the backups list show the bytes moving without reloading, at least two distinct values before
it completes, and the fields the worker fills in when it takes the run (started at, host, worker)
come in place too. The worker sleeps 0.25 s per MiB written (BACKUP_TEST_SLOW_AT) so it lasts."""

import os
import time

import pytest

from tests import stacks
from tests.api.test_live_cycle import manage, start, stop
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
MIB = 1024 * 1024


@pytest.fixture
def site(tmp_path):
    uploads = tmp_path / "uploads"
    engine, options = stacks.uploads_source(uploads, {f"big{n}.bin": os.urandom(12 * MIB) for n in range(2)})
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backupsite.settings", "VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}", "BACKUP_DIR": str(tmp_path / "backups"),
           "UPLOADS_DIR": options["path"], "BACKUP_COMPRESSION": "zstd", "Q_WORKERS": "1",
           "BACKUP_TEST_SLOW_AT": "write.uploads.tar.zst.mib", "BACKUP_TEST_SLOW_SECONDS": "0.25",
           "DJANGO_SUPERUSER_PASSWORD": "s3cret-pw"}
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.invalid")
    port = free_port()
    server = start(env, tmp_path, "server", "runserver", "--noreload", f"127.0.0.1:{port}")
    worker = start(env, tmp_path, "worker", "qcluster")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)
        stop(worker)


def uploads_done(page):
    """The bytes done the page shows for uploads (None before its row is there)."""
    cell = page.locator('.run-progress tr[data-component="uploads"]')
    return int(cell.get_attribute("data-bytes-done")) if cell.count() else None


def test_a_running_backup_shows_its_progress_moving(site, chromium_page, screenshot):
    page = chromium_page
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
    page.goto(f"{site}/admin/backups_app/backup/backup-now/")
    page.click("text=Start backup")
    page.wait_for_selector(".run-progress")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    started_at = page.locator(".field-started_at .readonly")
    queued = started_at.inner_text() == "-"  # rendered before the worker took it (the worker starts slowly)

    seen, shots = set(), 0
    deadline = time.monotonic() + 120  # the worker process starting on a loaded machine, then the run
    while 'data-state="running"' not in page.content() or not uploads_done(page):
        assert time.monotonic() < deadline, "the backup never showed as running with bytes done"
        time.sleep(0.2)
    # Filled in place when the worker took the run (by the poll when the page showed it queued).
    assert started_at.inner_text() != "-", queued
    assert page.locator(".field-host .readonly").inner_text() != "-", queued
    assert " pid " in page.locator(".field-worker .readonly").inner_text(), queued
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and page.locator('.run-live[data-active="1"]').count():
        done = uploads_done(page)
        if done and done not in seen:
            seen.add(done)
            if shots < 2:
                shots += 1
                screenshot(page, f"progress-0{shots}-running")
        time.sleep(0.3)
    assert len(seen) >= 2, seen  # the bar moved while the page stayed
    # The values came in place: the page was loaded once only, until the run ended.
    assert len(navigations) <= 1, navigations

    page.wait_for_selector("text=finished: completed")
    assert page.locator('.run-progress tr[data-component="uploads"]').get_attribute("data-state") == "done"
    assert "100%" in page.locator(".run-progress").inner_text()
    screenshot(page, "progress-03-completed")

    # The list refreshes running rows too: a second backup, watched from the list.
    page.goto(f"{site}/admin/backups_app/backup/backup-now/")
    page.click("text=Start backup")
    page.goto(f"{site}/admin/backups_app/backup/")
    running = page.locator('.run-live[data-active="1"] .progress-bar')
    running.first.wait_for()
    values = set()
    while time.monotonic() < deadline + 60 and page.locator('.run-live[data-active="1"]').count():
        if running.count():
            values.add(running.first.get_attribute("aria-valuenow"))
            if len(values) == 2:
                screenshot(page, "progress-04-list-running")
        time.sleep(0.3)
    assert len(values) >= 2, values
    assert page.locator('.run-live[data-active="1"]').count() == 0
