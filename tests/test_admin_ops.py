"""The operations admin: the Retention page and its prune button, pin/unpin and rehearsal
actions, the read-only audit log, audited schedule edits limited to our own tasks; audit rows for each
action."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from backups_app.admin.forms import SCHEDULABLE_TASKS
from backups_app.models import AuditEvent, Backup, Verification
from backups_app.services import backups, schedules

pytestmark = pytest.mark.django_db
RETENTION = "/admin/backups_app/backup/retention/"
CHANGELIST = "/admin/backups_app/backup/"


@pytest.fixture
def three_backups(demo_stack, settings):
    """Backups made today, 3 days ago and 40 days ago (policy: 7 daily, 30 days, 10 at most)."""
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 7, 30, 10
    made = [backups.create_backup() for _ in range(3)]
    now = timezone.now()
    for backup, age in zip(made, (40, 3, 0)):
        Backup.objects.filter(pk=backup.pk).update(created_at=now - timedelta(days=age))
    return made


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return user


def test_retention_page_lists_every_backup_with_its_fate(client, staff, three_backups):
    old, middle, new = three_backups
    page = client.get(RETENTION).content.decode()
    assert "keep daily 7; at most 30 days old; at most 10 unpinned backups" in page
    assert f"{new.backup_id}</a>" in page and "kept: newest, daily #1" in page
    assert "kept: daily #2" in page
    assert "<strong>will be deleted</strong>: older than 30 days (BACKUP_RETENTION_DAYS)" in page
    assert "Prune now: delete 1 backup(s)" in page


def test_prune_button_deletes_and_audits(client, staff, three_backups, backup_storage_dir):
    old = three_backups[0]
    response = client.post(RETENTION, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302
    assert not Backup.objects.filter(pk=old.pk).exists()
    assert not (backup_storage_dir / old.backup_id).exists()
    event = AuditEvent.objects.get(action="backup.prune")
    assert (event.target, event.username, event.origin) == (old.backup_id, "admin", "192.0.2.7")
    assert event.details == {"reason": "older than 30 days (BACKUP_RETENTION_DAYS)"}


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
    assert client.post(RETENTION).status_code == 403
    assert Backup.objects.count() == 3
    client.logout()
    assert client.get(RETENTION).status_code == 302  # to the login page


def test_audit_log_is_read_only(client, staff, three_backups):
    client.post(CHANGELIST, {"action": "pin_backups", "_selected_action": [three_backups[0].pk]})
    event = AuditEvent.objects.get(action="backup.pin")
    events = AuditEvent.objects.count()
    assert client.get("/admin/backups_app/auditevent/").status_code == 200
    assert client.get("/admin/backups_app/auditevent/add/").status_code == 403
    assert client.post(f"/admin/backups_app/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.count() == events and AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.urls("backupsite.urls")
def test_schedule_edits_in_the_admin_are_audited(client, staff):
    schedule = Schedule.objects.create(name="backups: daily backup", func="backups_app.tasks.scheduled_backup",
                                       schedule_type=Schedule.CRON, cron="0 2 * * *")
    response = client.post(f"/admin/django_q/schedule/{schedule.pk}/change/", {
        "name": schedule.name, "func": schedule.func, "schedule_type": "C", "cron": "15 2 * * *",
        "repeats": -1, "next_run_0": "2030-01-01", "next_run_1": "02:15:00", "minutes": "", "args": "'daily'",
        "kwargs": "", "hook": "", "cluster": "", "intended_date_kwarg": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="schedule.change")
    assert event.target == "backups: daily backup" and "cron" in event.details["fields"]
    client.post(f"/admin/django_q/schedule/{schedule.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(action="schedule.delete", target="backups: daily backup").exists()


def schedule_form(**fields):
    return {"name": "nightly", "func": "backups_app.tasks.scheduled_backup", "schedule_type": "C",
            "cron": "0 2 * * *", "repeats": -1, "next_run_0": "2030-01-01", "next_run_1": "02:00:00",
            "minutes": "", "args": "'daily'", "kwargs": "", "hook": "", "cluster": "", "intended_date_kwarg": "",
            **fields}


@pytest.mark.urls("backupsite.urls")
def test_schedule_admin_refuses_functions_we_do_not_schedule(client, staff):
    response = client.post("/admin/django_q/schedule/add/", schedule_form(func="os.system", args="'id'"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["func"] == [
        "'os.system' cannot be scheduled here; schedules may only run backups_app.tasks.scheduled_backup, "
        "backups_app.tasks.scheduled_rehearsal, backups_app.tasks.sweep (manage.py setup_schedules creates "
        "them from the BACKUP_SCHEDULE_* settings)."]
    assert not Schedule.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.urls("backupsite.urls")
def test_schedule_admin_refuses_hooks_and_kwargs(client, staff):
    response = client.post("/admin/django_q/schedule/add/", schedule_form(
        hook="os.system", kwargs="{'q_options': {'hook': 'os.system'}}"))
    errors = response.context["adminform"].form.errors
    assert errors["hook"] == ["Hooks cannot be set here; leave it empty."]
    assert errors["kwargs"] == ["Keyword arguments cannot be set here; the schedulable tasks take none."]
    assert not Schedule.objects.exists()


@pytest.mark.urls("backupsite.urls")
def test_schedule_admin_accepts_our_tasks(client, staff):
    response = client.post("/admin/django_q/schedule/add/", schedule_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = Schedule.objects.get()
    assert (schedule.func, schedule.args, schedule.cron) == ("backups_app.tasks.scheduled_backup", "'daily'",
                                                              "0 2 * * *")
    assert AuditEvent.objects.get(action="schedule.create").target == "nightly"


def test_every_schedule_setup_creates_is_schedulable_in_the_admin(settings):
    settings.BACKUP_SCHEDULE_DAILY = settings.BACKUP_SCHEDULE_WEEKLY = "0 2 * * *"
    settings.BACKUP_SCHEDULE_MONTHLY = settings.BACKUP_SCHEDULE_REHEARSAL = "0 2 * * *"
    funcs = {fields["func"] for fields in schedules.desired().values()}
    assert funcs == set(SCHEDULABLE_TASKS)
