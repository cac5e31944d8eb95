from django.core.signals import setting_changed
from django.dispatch import receiver
from django_q.signals import post_spawn


@receiver(setting_changed)
def reset_registry(setting, **kwargs):
    if setting == "BACKUP_SOURCES":
        from backups_app import components

        components.reset()


@receiver(post_spawn)
def sweep_on_worker_start(**kwargs):
    """A worker that starts may be replacing one that died mid-run."""
    from backups_app.services.runs import sweep_stale_runs

    sweep_stale_runs()
