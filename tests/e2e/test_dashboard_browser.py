"""The dashboard on the admin index in Chromium at 1400 px (issue 17 §1): a row per component with
its newest backup, age badge, sparkline and rehearsal; health and running work; Back up now leads
to the form. Screenshots dashboard-01..02 under SCREENSHOT_DIR."""

import pytest
from django.contrib.auth.models import User

from backups_app.services import backups, verification
from backups_app.services.schedules import setup_schedules

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_dashboard_in_a_browser(live_server, chromium_page, login, screenshot, demo_stack):
    setup_schedules()
    made = [backups.create_backup() for _ in range(3)]
    verification.verify(made[-1].backup_id, deep=True)
    User.objects.create_superuser("admin", "", "s3cret-pw")
    page = chromium_page
    login(page, "admin", "s3cret-pw")

    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#backup-dashboard")
    screenshot(page, "dashboard-01-index")
    for name in ("uploads", "sqlite"):
        row = page.locator(f'tr.source[data-source="{name}"]')
        assert row.locator(f"text={made[-1].backup_id}").is_visible()
        assert row.locator(".fresh-ok").is_visible() and row.locator("svg.sparkline").is_visible()
        assert row.locator("td.rehearsal", has_text="✔ passed").is_visible()
    assert page.locator("#backup-health", has_text="backup space").is_visible()
    assert page.locator("#running-work", has_text="Nothing is pending or running.").is_visible()
    assert page.locator("#content-main").is_visible()  # the app list stays below
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400

    page.click("#backup-dashboard >> text=Back up now")
    page.wait_for_selector("text=Start backup")
    screenshot(page, "dashboard-02-backup-now")
