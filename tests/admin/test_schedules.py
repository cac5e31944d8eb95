"""django-q2's schedule admin (admin/schedules.py, forms.py): edits audited, limited to the tasks
setup_schedules creates, no hooks or keyword arguments; the schedules settings manage are read-only
there, with their setting named; the list shows the cron expression and the next run in words."""

import re

import pytest
from django_q.models import Schedule

from backups_app.admin.forms import SCHEDULABLE_TASKS
from backups_app.models import AuditEvent
from backups_app.services import schedules

pytestmark = pytest.mark.django_db


@pytest.mark.urls("backupsite.urls")
def test_schedule_edits_in_the_admin_are_audited(client, staff):
    schedule = Schedule.objects.create(name="extra nightly", func="backups_app.tasks.scheduled_backup",
                                       schedule_type=Schedule.CRON, cron="0 2 * * *")
    response = client.post(f"/admin/django_q/schedule/{schedule.pk}/change/", {
        "name": schedule.name, "func": schedule.func, "schedule_type": "C", "cron": "15 2 * * *",
        "repeats": -1, "next_run_0": "2030-01-01", "next_run_1": "02:15:00", "minutes": "", "args": "'daily'",
        "kwargs": "", "hook": "", "cluster": "", "intended_date_kwarg": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="schedule.change")
    assert event.target == "extra nightly" and "cron" in event.details["fields"]
    client.post(f"/admin/django_q/schedule/{schedule.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(action="schedule.delete", target="extra nightly").exists()


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


@pytest.mark.urls("backupsite.urls")
def test_schedules_managed_by_settings_are_read_only_with_their_setting(client, staff, settings):
    settings.BACKUP_SCHEDULE_DAILY = "0 2 * * *"
    schedules.setup_schedules()
    daily = Schedule.objects.get(name="backups: daily backup")
    url = f"/admin/django_q/schedule/{daily.pk}/change/"
    page = client.get(url).content.decode()
    assert "Managed by the setting BACKUP_SCHEDULE_DAILY (now &#x27;0 2 * * *&#x27;): read-only here." in page
    assert 'name="cron"' not in page and "Save" not in page
    edit = client.post(url, schedule_form(name=daily.name, cron="30 1 * * *"))
    assert edit.status_code == 403 and Schedule.objects.get(pk=daily.pk).cron == "0 2 * * *"
    assert client.post(f"/admin/django_q/schedule/{daily.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Schedule.objects.filter(pk=daily.pk).exists() and not AuditEvent.objects.filter(
        action__startswith="schedule.c").exists()
    settings.BACKUP_SCHEDULE_DAILY = "30 1 * * *"  # the setting is the way to change it
    schedules.setup_schedules()
    assert Schedule.objects.get(pk=daily.pk).cron == "30 1 * * *"


@pytest.mark.urls("backupsite.urls")
def test_schedule_list_shows_the_cron_expression_and_the_next_run_in_words(client, staff, settings):
    settings.BACKUP_SCHEDULE_DAILY, settings.BACKUP_SWEEP_MINUTES = "0 2 * * *", 7
    schedules.setup_schedules()
    page = client.get("/admin/django_q/schedule/").content.decode()
    assert "cron 0 2 * * *" in page and "every 7 min" in page
    assert re.search(r'<td class="field-next_run_in_words">in (\d+\xa0(hours?|minutes?|days?),? ?)+</td>', page)
    assert "BACKUP_SCHEDULE_DAILY (read-only here)" in page and "BACKUP_SWEEP_MINUTES (read-only here)" in page
