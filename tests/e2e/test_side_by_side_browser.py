"""A side-by-side restore and its promotion in a real browser: the "Restore into …" section of the
restore form, the plan naming the target, the typed confirmation, then the Promote button on the
completed restore's page, and Undo promotion."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from backups_app.models import Restore, RunStatus
from backups_app.services import backups
from tests.stacks import uploads_source

pytestmark = pytest.mark.django_db(transaction=True)


def test_restore_into_a_folder_then_promote_and_undo(live_server, chromium_page, login, screenshot, sources,
                                                     sync_worker, tmp_path):
    live, side = tmp_path / "uploads", tmp_path / "uploads-restored"
    sources(uploads=uploads_source(live, {"report.txt": "quarterly numbers"}))
    backup = backups.create_backup(["uploads"])
    (live / "report.txt").write_text("overwritten by mistake")
    User.objects.create_superuser("admin", "", "s3cret-pw")
    page = chromium_page
    login(page, "admin", "s3cret-pw")

    page.goto(live_server.url + reverse("admin:backups_app_backup_restore", args=[backup.backup_id]))
    page.click("summary:has-text('Restore into')")  # the section is folded until opened
    page.fill("input[name=into__uploads__directory]", str(side))
    page.click("text=Plan the restore")
    page.wait_for_selector(f"text=the whole folder into folder {side}")
    assert page.locator(".restore-warning").count() == 0  # nothing live is replaced
    screenshot(page, "side-by-side-01-plan")
    page.fill("input[name=confirmation]", backup.backup_id)
    page.click("text=Restore now")
    page.wait_for_selector("text=finished: completed")
    screenshot(page, "side-by-side-02-restored")
    assert (side / "report.txt").read_text() == "quarterly numbers"
    assert (live / "report.txt").read_text() == "overwritten by mistake"

    page.click("input[type=submit][value=Promote]")
    page.get_by_text(f"{side} is now {live}").first.wait_for()
    screenshot(page, "side-by-side-03-promoted")
    assert (live / "report.txt").read_text() == "quarterly numbers"
    assert page.locator("input[type=submit][value=Promote]").count() == 0
    page.click("input[type=submit][value='Undo promotion']")
    page.get_by_text(f"{live} is back to what it was").first.wait_for()
    screenshot(page, "side-by-side-04-undone")
    assert (live / "report.txt").read_text() == "overwritten by mistake"
    assert Restore.objects.get().status == RunStatus.COMPLETED
