"""django-q2 entry points: thin wrappers over services."""

from django.conf import settings

from backups_app.models import RunStatus, Trigger
from backups_app.services import audit, backups, restores, retention, verification
from backups_app.services.runs import sweep_stale_runs


def run_backup(pk):
    backups.run_backup(pk)


def run_restore(pk):
    restores.run_restore(pk)


def run_verification(pk):
    verification.run_verification(pk)


def sweep():
    return sweep_stale_runs()


def scheduled_backup(label):
    """A scheduled backup of BACKUP_SCHEDULE_COMPONENTS (every source when empty), then a prune."""
    names = [n.strip() for n in settings.BACKUP_SCHEDULE_COMPONENTS.split(",") if n.strip()] or None
    backup = backups.create_backup(names, description=f"{label} backup", trigger=Trigger.SCHEDULE)
    audit.record("backup.create", target=backup.backup_id,
                 details={"trigger": Trigger.SCHEDULE, "schedule": label, "status": backup.status})
    if backup.status == RunStatus.COMPLETED and settings.BACKUP_PRUNE_AFTER_BACKUP:
        retention.prune()
    return backup.backup_id


def scheduled_rehearsal():
    """The weekly restore rehearsal of the newest backup."""
    result = verification.verify("latest", deep=True, trigger=Trigger.SCHEDULE)
    return f"{result.source_backup_id}: {result.status}"
