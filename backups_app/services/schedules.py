"""The django-q2 schedules, written from settings by ``manage.py setup_schedules``: daily, weekly
and monthly backups (seed 002: 02:00, Sunday 03:00, the 1st at 04:00; each followed by a prune),
a weekly restore rehearsal and the stale-run sweep. Running it again changes only what the
settings changed; an empty cron setting removes that schedule. These schedules are read-only in
the admin (``MANAGED_BY`` names the setting to change); schedules added there are the admin's own."""

from croniter import croniter
from django.conf import settings
from django_q.models import Schedule

from backups_app.errors import ConfigurationError
from backups_app.models import RunStatus, Trigger
from backups_app.parsing import comma_list
from backups_app.services import audit, backups, retention, verification

SWEEP_NAME = "backups: sweep stale runs"
BACKUP_TASK = "backups_app.tasks.scheduled_backup"
REHEARSAL_TASK = "backups_app.tasks.scheduled_rehearsal"


# {name: (setting, func, args)} of the cron schedules the settings manage.
CRON_PLANS = {
    "backups: daily backup": ("BACKUP_SCHEDULE_DAILY", BACKUP_TASK, "'daily'"),
    "backups: weekly backup": ("BACKUP_SCHEDULE_WEEKLY", BACKUP_TASK, "'weekly'"),
    "backups: monthly backup": ("BACKUP_SCHEDULE_MONTHLY", BACKUP_TASK, "'monthly'"),
    "backups: restore rehearsal": ("BACKUP_SCHEDULE_REHEARSAL", REHEARSAL_TASK, None),
}
# The schedules settings manage, by the setting that does: read-only in the admin (an edit there
# would be undone by the next setup_schedules), the setting is what to change.
MANAGED_BY = {**{name: plan[0] for name, plan in CRON_PLANS.items()}, SWEEP_NAME: "BACKUP_SWEEP_MINUTES"}


def desired():
    """{name: field values, or None for a schedule the settings switch off} for our schedules."""
    wanted = {}
    for name, (setting, func, args) in CRON_PLANS.items():
        cron = (getattr(settings, setting) or "").strip()
        if not cron:
            wanted[name] = None
            continue
        if not croniter.is_valid(cron):
            raise ConfigurationError(f"{setting}={cron!r} is not a cron expression (e.g. '0 2 * * *'); "
                                     "set it empty to have no such schedule.")
        wanted[name] = {"func": func, "args": args, "schedule_type": Schedule.CRON, "cron": cron, "minutes": None}
    wanted[SWEEP_NAME] = {"func": "backups_app.tasks.sweep", "args": None, "schedule_type": Schedule.MINUTES,
                          "minutes": settings.BACKUP_SWEEP_MINUTES, "cron": None}
    return wanted


def setup_schedules(user=None, request=None):
    """Create, update or remove our schedules. Returns {"created"|"updated"|"removed"|"unchanged": [names]}."""
    outcome = {"created": [], "updated": [], "removed": [], "unchanged": []}
    for name, fields in desired().items():
        existing = Schedule.objects.filter(name=name).first()
        if fields is None:
            if existing:
                Schedule.objects.filter(name=name).delete()
                outcome["removed"].append(name)
            continue
        if existing is None:
            Schedule(name=name, repeats=-1, **fields).save()  # save() sets a cron schedule's first next_run
            outcome["created"].append(name)
            continue
        changed = {k: v for k, v in fields.items() if getattr(existing, k) != v}
        if not changed and existing.repeats == -1:
            outcome["unchanged"].append(name)
            continue
        for key, value in changed.items():
            setattr(existing, key, value)
        existing.repeats = -1
        if {"cron", "schedule_type", "minutes"} & set(changed):
            existing.next_run = existing.calculate_next_run(existing.next_run)
        existing.save()
        outcome["updated"].append(name)
    changes = {k: v for k, v in outcome.items() if k != "unchanged" and v}
    if changes:
        audit.record("schedule.setup", user=user, request=request, target="schedules", details=changes)
    return outcome


def run_backup_job(label):
    """What a backup schedule runs: a backup of BACKUP_SCHEDULE_COMPONENTS (every source when
    empty), then a prune when it completed. Returns the Backup."""
    names = comma_list(settings.BACKUP_SCHEDULE_COMPONENTS) or None
    backup = backups.create_backup(names, description=f"{label} backup", trigger=Trigger.SCHEDULE,
                                   audit_details={"schedule": label})
    if backup.status == RunStatus.COMPLETED and settings.BACKUP_PRUNE_AFTER_BACKUP:
        retention.prune()
    return backup


def run_rehearsal_job():
    """What the rehearsal schedule runs: a deep verification of the newest backup."""
    return verification.verify("latest", deep=True, trigger=Trigger.SCHEDULE)
