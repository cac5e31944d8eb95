"""What happens when a run finishes: count it for /metrics and send notifications. A failure
here is logged and never changes the run's outcome."""

import logging

from django.dispatch import receiver

from backups_app.services import metrics, notify
from backups_app.services.runs import run_finished

logger = logging.getLogger("backups_app")


@receiver(run_finished)
def on_run_finished(sender, run, **kwargs):
    for action in (metrics.count_run, notify.notify_run):
        try:
            action(run)
        except Exception:
            logger.exception("after %s finished: %s failed", run, action.__name__)
