"""The readable pages in Chromium at 1400 px (issue 17 §3, §8): the backups list fits (Description
visible, no sideways scrolling), a backup's page shows its counts as a table with the raw JSON
collapsed, and a restore plan shows backup vs live with the differences highlighted."""

import pytest
from django.contrib.auth.models import User

from backups_app.services import backups
from tests.stacks import pg_connect

pytestmark = pytest.mark.django_db(transaction=True)


def test_list_backup_and_plan_pages_at_1400_px(live_server, chromium_page, login, screenshot, pg_stack):
    for description in ("nightly", "before the schema migration of the documents table", "weekly"):
        backups.create_backup(description=description)
    User.objects.create_superuser("admin", "", "s3cret-pw")
    page = chromium_page
    login(page, "admin", "s3cret-pw")

    page.goto(f"{live_server.url}/admin/backups_app/backup/")
    screenshot(page, "readable-01-list-1400")
    assert page.viewport_size["width"] == 1400
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400  # no sideways scrolling
    cell = page.locator("td.field-description", has_text="before the schema migration")
    box, results = cell.bounding_box(), page.locator("#changelist .results").bounding_box()
    assert cell.is_visible() and box["x"] + box["width"] <= results["x"] + results["width"]  # not scrolled away
    assert page.evaluate("(el => el.scrollWidth <= el.clientWidth)(document.querySelector('#changelist .results'))")
    size = page.locator("td.field-size span.size").first
    assert size.get_attribute("title").endswith(" bytes") and "KiB" in size.inner_text()

    page.locator("tr", has=cell).locator("th a").click()
    page.wait_for_selector("table.counts-table")
    screenshot(page, "readable-02-backup")
    assert page.locator("table.counts-table td", has_text="documents").is_visible()
    raw = page.locator(".field-counts details.raw")
    assert raw.get_attribute("open") is None and not raw.locator("pre").is_visible()  # collapsed
    raw.locator("summary").click()
    assert raw.locator("pre").is_visible()

    with pg_connect(pg_stack["pg"]) as conn:
        conn.execute("DELETE FROM documents WHERE id > 100")
    page.click("text=Restore…")
    page.click("text=Plan the restore")
    page.wait_for_selector("table.plan-table")
    screenshot(page, "readable-03-plan")
    changed = page.locator('table.plan-table tr.differs[data-component="postgres"]')
    assert changed.locator("td.count.backup").inner_text() == "150"
    assert changed.locator("td.count.live").inner_text().startswith("100")
    assert page.locator('table.plan-table tr.same[data-component="sqlite"]').count() == 1
    highlight = changed.locator("td.count.live").evaluate("td => getComputedStyle(td).backgroundColor")
    plain = page.locator('table.plan-table tr.same td.count').first.evaluate(
        "td => getComputedStyle(td).backgroundColor")
    assert highlight != plain
