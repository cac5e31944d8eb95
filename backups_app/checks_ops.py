"""System checks for the operations settings: retention, schedules, monitoring access."""

from croniter import croniter
from django.conf import settings
from django.core.checks import Error, Warning, register

from backups_app.errors import ConfigurationError
from backups_app.services import retention
from backups_app.views_ops import allowed_networks

SCHEDULE_SETTINGS = ("BACKUP_SCHEDULE_DAILY", "BACKUP_SCHEDULE_WEEKLY", "BACKUP_SCHEDULE_MONTHLY",
                     "BACKUP_SCHEDULE_REHEARSAL")


@register()
def check_retention(app_configs, **kwargs):
    try:
        policy = retention.policy_from_settings()
        retention.retention_time_zone()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="See docs/operations.md, Retention.", id="backups.E010")]
    kept_at_most = sum(n for n in policy.counts().values() if n > 0)
    if policy.max_count and kept_at_most > policy.max_count:
        return [Warning(f"The keep rules can keep {kept_at_most} backups but BACKUP_MAX_COUNT={policy.max_count} "
                        "deletes the oldest of them.",
                        hint="Raise BACKUP_MAX_COUNT or set it to 0 to let the keep rules decide.", id="backups.W010")]
    return []


@register()
def check_schedules(app_configs, **kwargs):
    return [Error(f"{name}={getattr(settings, name)!r} is not a cron expression.",
                  hint="Five fields, e.g. '0 2 * * *'; empty for no such schedule.", id="backups.E011")
            for name in SCHEDULE_SETTINGS if getattr(settings, name) and not croniter.is_valid(getattr(settings, name))]


@register()
def check_monitoring(app_configs, **kwargs):
    try:
        allowed_networks()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Comma-separated addresses or networks, e.g. 127.0.0.1,10.0.0.0/8.",
                      id="backups.E012")]
    return []
