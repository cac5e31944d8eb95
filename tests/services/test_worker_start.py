"""What a worker does when it starts (signals.sweep_on_worker_start), and what it must not do in
django-q2's sync mode, where every task passes through a worker inside the calling process."""

import threading

import pytest
from django_q.signals import post_spawn

from backups_app.models import RunStatus
from backups_app.services import backups


def sweep_threads():
    return [t for t in threading.enumerate() if t.name == "backups-sweep"]


@pytest.mark.django_db
def test_a_task_run_in_sync_mode_starts_no_sweep_thread(uploads, sync_worker):
    before = len(sweep_threads())
    backup = backups.create_backup(["uploads"], run_async=True)
    backup.refresh_from_db()
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert len(sweep_threads()) == before


@pytest.mark.django_db
def test_a_worker_process_start_sweeps_and_keeps_sweeping(settings):
    settings.BACKUP_SWEEP_SECONDS = 3600
    before = len(sweep_threads())
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert len(sweep_threads()) == before + 1
