"""Signal receivers: the registry follows BACKUP_SOURCES changes, a starting worker sweeps dead
runs (and keeps sweeping), and a finished run is counted for /metrics and notified. A receiver's failure is logged
and never changes a run's outcome."""

import logging

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django_q.signals import post_spawn

from backups_app import components
from backups_app.services import metrics, notify, sweeping
from backups_app.services.recorder import run_finished

logger = logging.getLogger("backups_app")


@receiver(setting_changed)
def reset_registry(setting, **kwargs):
    if setting == "BACKUP_SOURCES":
        components.reset()


@receiver(post_spawn)
def sweep_on_worker_start(**kwargs):
    """A worker that starts may be replacing one that died mid-run; then it sweeps every
    BACKUP_SWEEP_SECONDS, so dead runs are found whichever machines are left."""
    if settings.Q_CLUSTER.get("sync"):
        return  # django-q2's sync mode runs each task through a worker in this very process: no worker started
    sweeping.sweep()
    sweeping.start_periodic()


@receiver(run_finished)
def on_run_finished(sender, run, **kwargs):
    for action in (metrics.count_run, notify.notify_run):
        try:
            action(run)
        except Exception:
            logger.exception("after %s finished: %s failed", run, action.__name__)
