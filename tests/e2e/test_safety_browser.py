"""The destructive steps and the roles in a real browser: the restore wizard after a wrong typed id,
the prune confirmation, and a member of each group (what it sees, what it is refused)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone

from backups_app.models import Backup, Restore, RunStatus
from backups_app.services import backups
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def uploads_backup(sources, sync_worker, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "report.txt").write_text("quarterly numbers")
    sources(uploads=(ENGINES["uploads"], {"path": str(uploads)}))
    return uploads, backups.create_backup(description="before the migration")


def test_restore_wizard_keeps_the_choices_after_a_wrong_confirmation(live_server, chromium_page, login, screenshot,
                                                                      uploads_backup, tmp_path):
    uploads, backup = uploads_backup
    User.objects.create_superuser("admin", "", "pw")
    page = chromium_page
    login(page, "admin", "pw")
    aside = tmp_path / "aside"
    page.goto(f"{live_server.url}/admin/backups_app/backup/{backup.backup_id}/restore/")
    page.fill("textarea[name=options]", f"uploads.directory={aside}")
    page.click("text=Plan the restore")
    page.wait_for_selector("text=Step 2 of 3")
    screenshot(page, "restore-01-plan")
    page.fill("input[name=confirmation]", "backup_wrong")
    page.click("text=Restore now")
    page.wait_for_selector("#confirmation-error")
    screenshot(page, "restore-02-wrong-confirmation")
    assert "Not confirmed" in page.locator("#confirmation-error").inner_text()
    assert page.locator("text=Step 2 of 3").count() == 1 and not Restore.objects.exists()
    page.click("text=Change the selection")
    page.wait_for_selector("text=Step 1 of 3")
    screenshot(page, "restore-03-change-selection")
    assert page.locator("input[name=into__uploads__directory]").input_value() == str(aside)
    assert page.locator("input[name=components][value=uploads]").is_checked()
    page.click("text=Plan the restore")
    page.fill("input[name=confirmation]", backup.backup_id)
    page.click("text=Restore now")
    page.wait_for_selector("text=finished: completed")
    screenshot(page, "restore-04-done")
    assert Restore.objects.get().status == RunStatus.COMPLETED
    assert (aside / "report.txt").read_text() == "quarterly numbers"


def test_prune_goes_through_the_confirmation_page(live_server, chromium_page, login, screenshot, uploads_backup,
                                                  settings):
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 7, 30, 10
    _uploads, newest = uploads_backup
    old = backups.create_backup()
    Backup.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    User.objects.create_superuser("admin", "", "pw")
    page = chromium_page
    login(page, "admin", "pw")
    page.goto(f"{live_server.url}/admin/backups_app/backup/retention/")
    screenshot(page, "prune-01-retention")
    page.click("text=Prune now")
    page.wait_for_selector("#prune-deleted")
    screenshot(page, "prune-02-confirm")
    assert old.backup_id in page.locator("#prune-deleted").inner_text()
    assert "older than 30 days" in page.locator("#prune-deleted").inner_text()
    assert newest.backup_id in page.locator("#prune-kept").inner_text()
    assert Backup.objects.count() == 2  # the page deletes nothing
    page.click("text=No, take me back")
    page.click("text=Prune now")
    page.click("text=Yes, delete 1 backup(s)")
    page.wait_for_selector("text=Pruned 1 backup(s); 1 kept.")
    screenshot(page, "prune-03-done")
    assert list(Backup.objects.values_list("backup_id", flat=True)) == [newest.backup_id]


ROLES = [  # (group, short name, links shown on the backup's page, links not shown, refused page)
    ("Backup viewers", "viewer", [], ["Download", "Restore…"], ("download/", "backups_app.download_backup")),
    ("Backup operators", "operator", ["Download"], ["Restore…"], ("restore/", "backups_app.restore_backup")),
    ("Restorers", "restorer", ["Download", "Restore…"], [], ("../retention/prune/", None)),
]


@pytest.mark.parametrize("group, name, shown, hidden, refused", ROLES, ids=[r[1] for r in ROLES])
def test_each_role_sees_what_it_may_follow(live_server, chromium_page, login, screenshot, uploads_backup,
                                           group, name, shown, hidden, refused):
    _uploads, backup = uploads_backup
    call_command("setup_roles", stdout=open("/dev/null", "w"))
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    page = chromium_page
    login(page, name, "pw")
    page.goto(f"{live_server.url}/admin/backups_app/backup/")
    screenshot(page, f"roles-{name}-01-list")
    assert page.locator(f"text={backup.backup_id}").count() >= 1
    assert page.locator(".object-tools >> text=Back up now").count() == (0 if name == "viewer" else 1)
    page.goto(f"{live_server.url}/admin/backups_app/backup/{backup.pk}/change/")
    screenshot(page, f"roles-{name}-02-backup")
    tools = page.locator(".object-tools")
    for label in shown:
        assert tools.locator(f"text={label}").count() == 1, label
    for label in hidden:
        assert tools.locator(f"text={label}").count() == 0, label
    suffix, permission = refused
    if permission is None:  # restorers may do all the page offers; pruning needs delete, which no group has
        page.goto(f"{live_server.url}/admin/backups_app/backup/retention/")
        assert page.locator("text=Prune now").count() == 0
        screenshot(page, f"roles-{name}-03-retention")
        return
    response = page.goto(f"{live_server.url}/admin/backups_app/backup/{backup.backup_id}/{suffix}")
    screenshot(page, f"roles-{name}-03-refused")
    assert response.status == 403
    assert permission in page.locator("#permission-denied").inner_text()
