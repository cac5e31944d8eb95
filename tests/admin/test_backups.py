"""The backup admin (admin/backups.py) through the test client: Back up now, history and detail,
verify, delete, download, pin/unpin, the rehearsal and offsite-again actions, the Retention page and
its prune confirmation; permissions enforced and every action audited."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django_q.models import OrmQ

from backups_app.models import AuditEvent, Backup, Restore, RunStatus, Verification
from backups_app.services import backups
from tests.admin.conftest import CHANGELIST, PRUNE, RETENTION, staff_member

pytestmark = pytest.mark.django_db


def test_back_up_now_runs_and_shows_in_history(admin_stack, superuser_client):
    page = superuser_client.get(reverse("admin:backups_app_backup_backup_now"))
    assert page.status_code == 200 and b'value="uploads"' in page.content
    response = superuser_client.post(reverse("admin:backups_app_backup_backup_now"),
                                     {"components": ["uploads", "sqlite"], "description": "from admin"})
    backup = Backup.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:backups_app_backup_change",
                                                                   args=[backup.pk])
    assert backup.status == RunStatus.COMPLETED and backup.trigger == "admin"
    assert backup.created_by.username == "boss"

    listing = superuser_client.get(reverse("admin:backups_app_backup_changelist"))
    assert backup.backup_id.encode() in listing.content and b"from admin" in listing.content
    detail = superuser_client.get(response.url)
    sha = backup.artifacts.get(name="sqlite_app.db").sha256
    assert sha.encode() in detail.content
    assert b"finished: completed" in detail.content
    assert b'http-equiv="refresh"' not in detail.content


def test_back_up_now_needs_add_permission(admin_stack, client):
    client.force_login(staff_member("view_backup"))
    assert client.get(reverse("admin:backups_app_backup_backup_now")).status_code == 403
    assert client.post(reverse("admin:backups_app_backup_backup_now"), {"components": ["uploads"]}).status_code == 403
    assert not Backup.objects.exists()


def test_non_staff_cannot_reach_admin(admin_stack, client):
    client.force_login(User.objects.create_user("visitor", password="pw"))
    response = client.get(reverse("admin:backups_app_backup_changelist"))
    assert response.status_code == 302 and "login" in response.url


def test_verify_action_reports_damage(admin_stack, superuser_client, backup_storage_dir):
    good, bad = backups.create_backup(), backups.create_backup()
    (backup_storage_dir / bad.backup_id / "uploads.tar.zst").write_bytes(b"garbage")
    response = superuser_client.post(reverse("admin:backups_app_backup_changelist"),
                                     {"action": "verify_selected", "index": 0, "_selected_action": [good.pk, bad.pk]},
                                     follow=True)
    text = response.content.decode()
    assert f"Verified {good.backup_id}: all 2 artifacts match their checksums." in text
    assert f"Verification FAILED for {bad.backup_id}: uploads.tar.zst" in text


def test_delete_removes_stored_files(admin_stack, superuser_client, backup_storage_dir):
    backup = backups.create_backup()
    response = superuser_client.post(reverse("admin:backups_app_backup_delete", args=[backup.pk]), {"post": "yes"})
    assert response.status_code == 302 and response.url == CHANGELIST  # back to the history, not the index
    assert not Backup.objects.exists()
    assert not (backup_storage_dir / backup.backup_id).exists()


def test_a_delete_the_service_refuses_returns_to_the_backup_saying_why(admin_stack, superuser_client,
                                                                      backup_storage_dir):
    backup = backups.create_backup()
    Restore.objects.create(restore_id="restore_20990101_000000", backup=backup, source_backup_id=backup.backup_id,
                           status=RunStatus.IN_PROGRESS, components=backup.components)
    response = superuser_client.post(reverse("admin:backups_app_backup_delete", args=[backup.pk]), {"post": "yes"},
                                     follow=True)
    assert response.redirect_chain == [(reverse("admin:backups_app_backup_change", args=[backup.pk]), 302)]
    assert "is being restored; delete it after the restore finishes" in response.content.decode()
    assert Backup.objects.filter(pk=backup.pk, status=RunStatus.COMPLETED).exists()
    assert (backup_storage_dir / backup.backup_id / "metadata.json").exists()


def test_runs_are_read_only(admin_stack, superuser_client):
    backup = backups.create_backup()
    response = superuser_client.post(reverse("admin:backups_app_backup_change", args=[backup.pk]),
                                     {"description": "rewritten"})
    backup.refresh_from_db()
    assert response.status_code == 403 and backup.description == ""
    assert superuser_client.get(reverse("admin:backups_app_backup_add")).status_code == 403


def test_download_streams_the_set_and_single_artifacts(admin_stack, client, tmp_path):
    import io
    import subprocess
    import tarfile

    backup = backups.create_backup()
    client.force_login(staff_member("view_backup", "download_backup"))
    response = client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id]))
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    assert f'filename="{backup.backup_id}.tar"' in response["Content-Disposition"]
    archive = tmp_path / "set.tar"
    archive.write_bytes(body)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path)], check=True)
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / backup.backup_id, check=True,
                   capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert f"{backup.backup_id}/metadata.json" in tar.getnames()

    one = client.get(reverse("admin:backups_app_backup_download_artifact", args=[backup.backup_id, "sqlite_app.db"]))
    data = b"".join(one.streaming_content)
    import hashlib

    assert hashlib.sha256(data).hexdigest() == backup.artifacts.get(name="sqlite_app.db").sha256


def test_download_needs_download_permission(admin_stack, client):
    backup = backups.create_backup()
    client.force_login(staff_member("view_backup"))
    assert client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id])).status_code == 403


def test_admin_actions_are_audited(admin_stack, superuser_client):
    from backups_app.models import AuditEvent

    superuser_client.post(reverse("admin:backups_app_backup_backup_now"), {"components": ["uploads"]})
    backup = Backup.objects.get()
    b"".join(superuser_client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id]))
             .streaming_content)
    superuser_client.post(reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id]),
                          {"components": ["uploads"], "confirmation": backup.backup_id})
    superuser_client.post(reverse("admin:backups_app_backup_delete", args=[backup.pk]), {"post": "yes"})
    events = list(AuditEvent.objects.order_by("id").values_list("action", "username", "target"))
    assert [e[0] for e in events] == ["backup.create", "backup.download", "restore.start", "backup.delete"]
    assert {e[1] for e in events} == {"boss"}


def test_pinned_backup_cannot_be_deleted_from_the_admin(admin_stack, superuser_client, backup_storage_dir):
    backup = backups.create_backup()
    superuser_client.post(reverse("admin:backups_app_backup_changelist"),
                          {"action": "pin_backups", "index": 0, "_selected_action": [backup.pk]})
    backup.refresh_from_db()
    assert backup.pinned
    response = superuser_client.post(reverse("admin:backups_app_backup_changelist"),
                                     {"action": "delete_selected", "index": 0, "post": "yes",
                                      "_selected_action": [backup.pk]}, follow=True)
    assert response.status_code in (200, 403) and Backup.objects.filter(pk=backup.pk).exists()
    assert superuser_client.get(reverse("admin:backups_app_backup_delete", args=[backup.pk])).status_code == 403
    assert (backup_storage_dir / backup.backup_id / "metadata.json").exists()


def test_offsite_copy_can_be_queued_again_from_the_admin(admin_stack, superuser_client, settings, tmp_path):
    backup = backups.create_backup()  # no offsite storage yet: nothing copied
    changelist = reverse("admin:backups_app_backup_changelist")
    action = {"action": "copy_offsite_again", "index": 0, "_selected_action": [backup.pk]}
    refused = superuser_client.post(changelist, action, follow=True).content.decode()
    assert "No offsite storage is configured" in refused

    offsite_dir = tmp_path / "offsite"
    settings.STORAGES = {**settings.STORAGES, "backups_offsite": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(offsite_dir)}}}
    superuser_client.post(changelist, action)
    backup.refresh_from_db()
    assert backup.offsite_status == "verified", backup.offsite_error
    assert sorted(p.name for p in (offsite_dir / backup.backup_id).iterdir()) == [
        "SHA256SUMS", "metadata.json", "sqlite_app.db", "uploads.tar.zst"]


# The Retention page and the actions on the history (pin, unpin, rehearse)


def test_retention_page_lists_every_backup_with_its_fate(client, staff, three_backups):
    old, middle, new = three_backups
    page = client.get(RETENTION).content.decode()
    assert "keep daily 7; at most 30 days old; at most 10 unpinned backups" in page
    assert f"{new.backup_id}</a>" in page and "kept: sqlite, uploads: newest, daily #1" in page
    assert "kept: sqlite, uploads: daily #2" in page and '<td class="kept-for">sqlite, uploads</td>' in page
    assert "<strong>will be deleted</strong>: older than 30 days (BACKUP_RETENTION_DAYS)" in page
    assert "Prune now: delete 1 backup(s)" in page
    assert re.search(r'<div class="breadcrumbs">.*>Backups</a>\s*&rsaquo; Retention\s*</div>', page, re.S)


def test_prune_asks_first_listing_what_goes_and_what_stays(client, staff, three_backups):
    old, middle, new = three_backups
    assert client.get(PRUNE).status_code == 405  # POST only
    page = client.post(PRUNE)  # the Retention page's button: no confirmation field
    assert page.status_code == 200 and Backup.objects.count() == 3
    deleted, kept = (section_rows(page.content.decode(), table) for table in ("prune-deleted", "prune-kept"))
    assert deleted == [[old.backup_id, "regular", "uploads, sqlite", "older than 30 days (BACKUP_RETENTION_DAYS)"]]
    assert kept == [[new.backup_id, "regular", "uploads, sqlite", "sqlite, uploads: newest, daily #1"],
                    [middle.backup_id, "regular", "uploads, sqlite", "sqlite, uploads: daily #2"]]
    assert 'name="backup" value="{}"'.format(old.backup_id) in page.content.decode()
    assert re.search(r'<div class="breadcrumbs">.*>Backups</a>\s*&rsaquo; <a href="{}">Retention</a>\s*&rsaquo; Prune'
                     .format(RETENTION), page.content.decode(), re.S)


def test_confirmed_prune_deletes_what_was_listed_and_audits(client, staff, three_backups, backup_storage_dir):
    old = three_backups[0]
    response = client.post(PRUNE, {"confirm": "yes", "backup": [old.backup_id]}, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302 and response.url == RETENTION
    assert not Backup.objects.filter(pk=old.pk).exists()
    assert not (backup_storage_dir / old.backup_id).exists()
    event = AuditEvent.objects.get(action="backup.prune")
    assert (event.target, event.username, event.origin) == (old.backup_id, "admin", "192.0.2.7")
    assert event.details == {"reason": "older than 30 days (BACKUP_RETENTION_DAYS)"}


def test_confirmed_prune_deletes_only_what_the_plan_still_deletes(client, staff, three_backups):
    old, middle, new = three_backups
    # The page listed only ``new`` (as if the plan had changed since): the policy keeps it, and
    # ``old``, which the page did not list, waits for the next prune.
    response = client.post(PRUNE, {"confirm": "yes", "backup": [new.backup_id]}, follow=True)
    assert Backup.objects.count() == 3
    assert f"Not deleted, the policy keeps them now: {new.backup_id}." in response.content.decode()
    client.post(PRUNE, {"confirm": "yes"})
    assert Backup.objects.count() == 3


def section_rows(page, table_id):
    """The text of each cell but Created and Size, per row of the table ``table_id``."""
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0].split("<tbody>")[1]
    rows = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in body.split("</tr>")[:-1]]
    return [[re.sub(r"<[^>]+>", "", cells[i]).strip() for i in (0, 2, 3, 5)] for cells in rows]


def test_pin_and_unpin_actions(client, staff, three_backups):
    old = three_backups[0]
    client.post(CHANGELIST, {"action": "pin_backups", "_selected_action": [old.pk]})
    assert Backup.objects.get(pk=old.pk).pinned
    assert "kept: pinned" in client.get(RETENTION).content.decode()
    client.post(CHANGELIST, {"action": "unpin_backups", "_selected_action": [old.pk]})
    assert not Backup.objects.get(pk=old.pk).pinned
    pins = AuditEvent.objects.filter(action__in=["backup.pin", "backup.unpin"]).order_by("id")
    assert list(pins.values_list("action", "target", "username")) == [
        ("backup.pin", old.backup_id, "admin"), ("backup.unpin", old.backup_id, "admin")]


def test_rehearsal_action_queues_a_deep_verification(client, staff, three_backups):
    new = three_backups[2]
    client.post(CHANGELIST, {"action": "rehearse_backups", "_selected_action": [new.pk]})
    queued = Verification.objects.get()
    assert (queued.kind, queued.status, queued.trigger, queued.created_by) == ("deep", "pending", "admin", staff)
    assert OrmQ.objects.count() == 1
    assert AuditEvent.objects.get(action="backup.verify.deep").target == new.backup_id


def test_staff_without_delete_permission_sees_but_cannot_prune(client, django_user_model, three_backups):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_backup"))
    client.force_login(viewer)
    page = client.get(RETENTION)
    assert page.status_code == 200 and "Prune now" not in page.content.decode()
    assert client.post(PRUNE).status_code == 403
    assert client.post(PRUNE, {"confirm": "yes", "backup": [three_backups[0].backup_id]}).status_code == 403
    assert Backup.objects.count() == 3
    client.logout()
    assert client.get(RETENTION).status_code == 302  # to the login page


def test_admin_verifications_are_recorded(uploads, client, django_user_model):
    from django.urls import reverse

    from backups_app.models import AuditEvent, Verification

    backup = backups.create_backup()
    client.force_login(django_user_model.objects.create_superuser("boss", "", "pw"))
    client.post(reverse("admin:backups_app_backup_changelist"),
                {"action": "verify_selected", "index": 0, "_selected_action": [backup.pk]})
    assert Verification.objects.filter(trigger="admin", status="completed").count() == 1
    assert AuditEvent.objects.filter(action="backup.verify.quick", username="boss").count() == 1
