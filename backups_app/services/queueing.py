"""Handing work to the django-q2 worker."""

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task

from backups_app.errors import Unavailable
from backups_app.models import RunStatus
from backups_app.services.recorder import RunRecorder

# The task that runs each kind of run (by model name), for handing a run to the queue again.
RUN_TASKS = {"backup": "backups_app.tasks.run_backup", "restore": "backups_app.tasks.run_restore",
             "verification": "backups_app.tasks.run_verification"}


def submit(task, pk, name):
    """Hand a task to the django-q2 worker. ``Q_CLUSTER["sync"]`` is read here, at use (django-q2
    reads its own settings once at import), so tests and single-process setups can run inline."""
    async_task(task, pk, task_name=name, sync=settings.Q_CLUSTER.get("sync", False))


def enqueue(task, run, name):
    """Submit a recorded run (noting when: ``queued_at``); a broker that refuses the task fails the
    run (and says so through ``run_finished``) instead of leaving it pending forever."""
    _mark_queued(run)
    try:
        submit(task, run.pk, name)
    except Exception as exc:
        RunRecorder(run).finish(RunStatus.FAILED, f"Could not hand the run to the task queue: {exc}")
        raise Unavailable(f"Could not queue {name}: {exc}. Is the django-q2 broker reachable?") from exc


def requeue(run):
    """Hand a queued run that no worker started to the queue again (its task may have been lost
    with a machine). Harmless if the first task still arrives: a run is claimed once, and a task
    for a run that is not pending does nothing. False when it is no longer pending."""
    if not _mark_queued(run, status=RunStatus.PENDING):
        return False
    submit(RUN_TASKS[run._meta.model_name], run.pk, str(run))
    return True


def _mark_queued(run, **still):
    run.queued_at = timezone.now()
    return type(run).objects.filter(pk=run.pk, **still).update(queued_at=run.queued_at)
