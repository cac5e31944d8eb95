"""django-q2 entry points: thin wrappers over services."""

from backups_app.services import backups, restores
from backups_app.services.runs import sweep_stale_runs


def run_backup(pk):
    backups.run_backup(pk)


def run_restore(pk):
    restores.run_restore(pk)


def sweep():
    return sweep_stale_runs()
