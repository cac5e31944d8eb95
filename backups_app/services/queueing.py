"""Handing work to the django-q2 worker."""

from django.conf import settings
from django_q.tasks import async_task

from backups_app.errors import Unavailable
from backups_app.models import RunStatus
from backups_app.services.recorder import RunRecorder


def submit(task, pk, name):
    """Hand a task to the django-q2 worker. ``Q_CLUSTER["sync"]`` is read here, at use (django-q2
    reads its own settings once at import), so tests and single-process setups can run inline."""
    async_task(task, pk, task_name=name, sync=settings.Q_CLUSTER.get("sync", False))


def enqueue(task, run, name):
    """Submit a recorded run; a broker that refuses the task fails the run (and says so through
    ``run_finished``) instead of leaving it pending forever."""
    try:
        submit(task, run.pk, name)
    except Exception as exc:
        RunRecorder(run).finish(RunStatus.FAILED, f"Could not hand the run to the task queue: {exc}")
        raise Unavailable(f"Could not queue {name}: {exc}. Is the django-q2 broker reachable?") from exc
