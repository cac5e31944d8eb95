"""A staff user in a real browser (Debian's Chromium driven by Playwright): log in, back up now,
watch it finish, open it, restore it through plan → typed confirmation → result."""

import os
import shutil

import pytest
from django.contrib.auth.models import User

from backups_app.models import Restore, RunStatus
from tests.stacks import ENGINES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser_page(tmp_path):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the live server shares the test DB
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def test_backup_and_restore_from_the_admin(live_server, browser_page, sources, sync_worker, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "report.txt").write_text("quarterly numbers")
    sources(uploads=(ENGINES["uploads"], {"path": str(uploads)}))
    User.objects.create_superuser("admin", "", "s3cret-pw")
    page = browser_page
    shots = os.environ.get("E2E_SCREENSHOTS")

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "s3cret-pw")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/backups_app/backup/")
    page.click("text=Back up now")
    page.fill("#id_description", "before the migration")
    page.click("text=Start backup")
    page.wait_for_selector("text=finished: completed")
    if shots:
        page.screenshot(path=f"{shots}/backup_detail.png", full_page=True)
    backup_id = page.locator(".field-backup_id .readonly").inner_text().strip()

    (uploads / "report.txt").write_text("overwritten by mistake")
    page.click("text=Restore…")
    page.click("text=Plan the restore")
    page.wait_for_selector("text=This will overwrite existing data")
    assert page.locator("text=✔ verified").count() == 1
    if shots:
        page.screenshot(path=f"{shots}/restore_plan.png", full_page=True)
    page.fill("input[name=confirmation]", backup_id)
    page.click("text=Restore now")
    page.wait_for_selector("text=finished: completed")
    if shots:
        page.screenshot(path=f"{shots}/restore_done.png", full_page=True)

    assert Restore.objects.get().status == RunStatus.COMPLETED
    assert (uploads / "report.txt").read_text() == "quarterly numbers"
