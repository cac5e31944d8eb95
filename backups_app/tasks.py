"""django-q2 entry points: thin wrappers over services."""

from backups_app.services import backups, offsite, restores, schedules, sweeping, verification


def run_backup(pk):
    backups.run_backup(pk)


def run_restore(pk):
    restores.run_restore(pk)


def run_verification(pk):
    verification.run_verification(pk)


def copy_offsite(pk):
    offsite.run_queued_copy(pk)


def sweep():
    return sweeping.sweep()


def scheduled_backup(label):
    return schedules.run_backup_job(label).backup_id


def scheduled_rehearsal():
    result = schedules.run_rehearsal_job()
    return f"{result.source_backup_id}: {result.status}"
