"""Roles (services/roles.py, ``manage.py setup_roles``): the three groups, made idempotently; what a
member of each may follow is what is shown; a refused page names the missing permission."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.urls import reverse

from backups_app.models import Backup, Restore
from backups_app.services import backups
from tests.admin.conftest import PRUNE

pytestmark = pytest.mark.django_db


def group_rights():
    return {g.name: sorted(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}


def test_setup_roles_twice_is_idempotent(capsys):
    call_command("setup_roles")
    first = group_rights()
    assert capsys.readouterr().out.split() == ["created", "Backup", "viewers", "created", "Backup", "operators",
                                               "created", "Restorers"]
    assert first["Backup viewers"] == ["view_auditevent", "view_backup", "view_backupartifact",
                                       "view_operationlock", "view_restore", "view_verification"]
    assert set(first["Backup operators"]) - set(first["Backup viewers"]) == {"add_backup", "change_backup",
                                                                              "download_backup"}
    assert set(first["Restorers"]) - set(first["Backup operators"]) == {"restore_backup"}
    Group.objects.get(name="Restorers").permissions.clear()  # an edit by hand is put right
    call_command("setup_roles")
    assert "updated   Restorers" in capsys.readouterr().out
    call_command("setup_roles")
    assert capsys.readouterr().out.split().count("unchanged") == 3
    assert group_rights() == first and Group.objects.count() == 3


def member_of(group_name):
    call_command("setup_roles", stdout=open("/dev/null", "w"))
    user = User.objects.create_user(group_name.split()[-1].lower(), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group_name))
    return user


def test_viewer_sees_history_but_no_links_it_cannot_follow(admin_stack, client):
    backup = backups.create_backup()
    client.force_login(member_of("Backup viewers"))
    history = client.get(reverse("admin:backups_app_backup_changelist")).content.decode()
    assert backup.backup_id in history and "Back up now" not in history and "Rescan storage" not in history
    assert "verify_selected" not in history and "pin_backups" not in history
    detail = client.get(reverse("admin:backups_app_backup_change", args=[backup.pk])).content.decode()
    assert "uploads.tar" in detail and "sha256" in detail.lower()  # artifacts and their checksums
    assert f"{backup.backup_id}/download/" not in detail and f"{backup.backup_id}/restore/" not in detail


def test_refused_page_names_the_missing_permission(admin_stack, client):
    backup = backups.create_backup()
    client.force_login(member_of("Backup operators"))
    refused = client.get(reverse("admin:backups_app_backup_restore", args=[backup.backup_id]))
    page = refused.content.decode()
    assert refused.status_code == 403
    assert ("needs the permission <strong>“Can restore from a backup”</strong> "
            "(<code>backups_app.restore_backup</code>)") in page
    assert "The groups that have it: Restorers." in page
    assert '<div id="site-name">' in page  # the admin's header: styled like the admin
    assert client.post(PRUNE).status_code == 403 and Backup.objects.count() == 1
    assert "backups_app.delete_backup" in client.post(PRUNE).content.decode()


def test_operator_downloads_and_restorer_restores(admin_stack, client):
    backup = backups.create_backup()
    client.force_login(member_of("Backup operators"))
    detail = client.get(reverse("admin:backups_app_backup_change", args=[backup.pk])).content.decode()
    assert f"{backup.backup_id}/download/" in detail and f"{backup.backup_id}/restore/" not in detail
    assert client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id])).status_code == 200
    client.force_login(member_of("Restorers"))
    detail = client.get(reverse("admin:backups_app_backup_change", args=[backup.pk])).content.decode()
    assert f"{backup.backup_id}/restore/" in detail
    confirm = client.post(reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id]),
                          {"components": ["uploads"], "confirmation": backup.backup_id})
    assert confirm.status_code == 302 and Restore.objects.count() == 1
