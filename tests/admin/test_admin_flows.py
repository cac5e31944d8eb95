"""Admin flows through the test client: back up now, history, detail, verify, delete, and the
restore flow plan → typed confirmation → result, with permissions enforced."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from backups_app.models import Backup, Restore, RunStatus
from backups_app.services import backups

UPLOADS = "backups_app.components.uploads.UploadsComponent"
SQLITE = "backups_app.components.sqlite.SQLiteComponent"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def run_tasks_inline(sync_worker):
    pass


@pytest.fixture
def stack(sources, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "a.txt").write_text("alpha")
    import sqlite3

    db = tmp_path / "app.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('one'), ('two')")
    sources(uploads=(UPLOADS, {"path": str(uploads)}), sqlite=(SQLITE, {"paths": str(db)}))
    return uploads, db


def staff(*codenames):
    user = User.objects.create_user(f"user{User.objects.count()}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="backups_app",
                                                        codename__in=codenames))
    return user


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    return client


def test_back_up_now_runs_and_shows_in_history(stack, superuser_client):
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


def test_back_up_now_needs_add_permission(stack, client):
    client.force_login(staff("view_backup"))
    assert client.get(reverse("admin:backups_app_backup_backup_now")).status_code == 403
    assert client.post(reverse("admin:backups_app_backup_backup_now"), {"components": ["uploads"]}).status_code == 403
    assert not Backup.objects.exists()


def test_non_staff_cannot_reach_admin(stack, client):
    client.force_login(User.objects.create_user("visitor", password="pw"))
    response = client.get(reverse("admin:backups_app_backup_changelist"))
    assert response.status_code == 302 and "login" in response.url


def test_restore_flow_plan_then_typed_confirmation(stack, superuser_client):
    uploads, _ = stack
    backup = backups.create_backup()
    (uploads / "a.txt").write_text("changed")
    url = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])

    assert b"Plan the restore" in superuser_client.get(url).content
    plan = superuser_client.post(url, {"components": ["uploads"]})
    assert b"This will overwrite existing data" in plan.content
    assert b"verified" in plan.content and b"Type the backup id" in plan.content
    assert not Restore.objects.exists()

    confirm_url = reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id])
    assert superuser_client.get(confirm_url).status_code == 405  # POST only
    wrong = superuser_client.post(confirm_url, {"components": ["uploads"], "confirmation": "yes"})
    assert wrong.status_code == 302 and not Restore.objects.exists()
    assert (uploads / "a.txt").read_text() == "changed"

    done = superuser_client.post(confirm_url, {"components": ["uploads"], "confirmation": backup.backup_id})
    restore = Restore.objects.get()
    assert done.url == reverse("admin:backups_app_restore_change", args=[restore.pk])
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert restore.components == ["uploads"] and restore.trigger == "admin"
    assert (uploads / "a.txt").read_text() == "alpha"
    assert b"finished: completed" in superuser_client.get(done.url).content


def test_restore_options_are_validated_in_the_form(stack, superuser_client):
    backup = backups.create_backup()
    url = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])
    page = superuser_client.post(url, {"components": ["uploads"], "options": "uploads.mode=merge"})
    assert b"unknown option(s) mode" in page.content


def test_restore_needs_restore_permission(stack, client):
    backup = backups.create_backup()
    client.force_login(staff("view_backup", "view_restore", "download_backup"))
    assert client.get(reverse("admin:backups_app_backup_restore", args=[backup.backup_id])).status_code == 403
    confirm = client.post(reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id]),
                          {"components": ["uploads"], "confirmation": backup.backup_id})
    assert confirm.status_code == 403 and not Restore.objects.exists()


def test_verify_action_reports_damage(stack, superuser_client, backup_storage_dir):
    good, bad = backups.create_backup(), backups.create_backup()
    (backup_storage_dir / bad.backup_id / "uploads.tar.zst").write_bytes(b"garbage")
    response = superuser_client.post(reverse("admin:backups_app_backup_changelist"),
                                     {"action": "verify_selected", "index": 0, "_selected_action": [good.pk, bad.pk]},
                                     follow=True)
    text = response.content.decode()
    assert f"Verified {good.backup_id}: all 2 artifacts match their checksums." in text
    assert f"Verification FAILED for {bad.backup_id}: uploads.tar.zst" in text


def test_delete_removes_stored_files(stack, superuser_client, backup_storage_dir):
    backup = backups.create_backup()
    response = superuser_client.post(reverse("admin:backups_app_backup_delete", args=[backup.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Backup.objects.exists()
    assert not (backup_storage_dir / backup.backup_id).exists()


def test_runs_are_read_only(stack, superuser_client):
    backup = backups.create_backup()
    response = superuser_client.post(reverse("admin:backups_app_backup_change", args=[backup.pk]),
                                     {"description": "rewritten"})
    backup.refresh_from_db()
    assert response.status_code == 403 and backup.description == ""
    assert superuser_client.get(reverse("admin:backups_app_backup_add")).status_code == 403


def test_download_streams_the_set_and_single_artifacts(stack, client, tmp_path):
    import io
    import subprocess
    import tarfile

    backup = backups.create_backup()
    client.force_login(staff("view_backup", "download_backup"))
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


def test_download_needs_download_permission(stack, client):
    backup = backups.create_backup()
    client.force_login(staff("view_backup"))
    assert client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id])).status_code == 403


def test_admin_actions_are_audited(stack, superuser_client):
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


def test_pinned_backup_cannot_be_deleted_from_the_admin(stack, superuser_client, backup_storage_dir):
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


def test_offsite_copy_can_be_queued_again_from_the_admin(stack, superuser_client, settings, tmp_path):
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
