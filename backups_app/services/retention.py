"""Applying the retention policy (``retention_policy.py``) to the stored backups: the policy from
settings, the plan the Retention page shows, the prune that schedules run, and pinning."""

import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from backups_app.errors import BackupError, ConfigurationError
from backups_app.models import Backup, RunStatus
from backups_app.services import audit
from backups_app.services.backups import delete_backup, get_backup
from backups_app.services.retention_policy import (
    PERIODS,
    Decision,
    Duration,
    Item,
    Policy,
    decide_by_component,
    parse_duration,
)


def policy_from_settings():
    def duration(name):
        return parse_duration(getattr(settings, name), name) if getattr(settings, name) else Duration()

    return Policy(
        last=settings.BACKUP_KEEP_LAST, hourly=settings.BACKUP_KEEP_HOURLY, daily=settings.BACKUP_KEEP_DAILY,
        weekly=settings.BACKUP_KEEP_WEEKLY, monthly=settings.BACKUP_KEEP_MONTHLY,
        yearly=settings.BACKUP_KEEP_YEARLY, within=duration("BACKUP_KEEP_WITHIN"),
        **{f"within_{name}": duration(f"BACKUP_KEEP_WITHIN_{name.upper()}") for name in PERIODS},
        max_age_days=settings.BACKUP_RETENTION_DAYS, max_count=settings.BACKUP_MAX_COUNT,
    )


def describe_policy():
    """The policy in effect, as short phrases for the Retention page."""
    policy = policy_from_settings()
    phrases = [f"keep {name} {'all' if count < 0 else count}" for name, count in policy.counts().items() if count]
    if policy.within:
        phrases.append(f"keep within {policy.within.text}")
    phrases += [f"keep {name} within {d.text}" for name, d in policy.withins().items() if d]
    if policy.empty():
        phrases.append("no keep rule: everything is kept")
    if policy.max_age_days:
        phrases.append(f"at most {policy.max_age_days} days old")
    if policy.max_count:
        phrases.append(f"at most {policy.max_count} unpinned backups")
    phrases.append(f"safety backups {settings.BACKUP_SAFETY_RETENTION_DAYS} days")
    phrases.append(f"periods in {retention_time_zone().key}")
    return phrases


def retention_time_zone():
    name = settings.BACKUP_RETENTION_TIME_ZONE or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"BACKUP_RETENTION_TIME_ZONE={name!r} is not a known time zone "
                                 "(use an IANA name such as Europe/Berlin).") from None


def plan(now=None):
    """Decisions for every completed backup, newest first: regular ones by the policy, applied per
    component (a damaged backup is nobody's newest), safety backups by their age.
    Returns [(Backup, Decision)]."""
    now = now or timezone.now()
    completed = Backup.objects.filter(status=RunStatus.COMPLETED)
    regular = {b.backup_id: b for b in completed.filter(kind=Backup.Kind.REGULAR).with_last_check()}
    items = [Item(b.backup_id, b.created_at, b.pinned, tuple(b.components), b.damaged) for b in regular.values()]
    decisions = decide_by_component(items, policy_from_settings(), now, retention_time_zone())
    rows = [(regular[d.key], d) for d in decisions]
    days = settings.BACKUP_SAFETY_RETENTION_DAYS
    for backup in completed.filter(kind=Backup.Kind.SAFETY):
        if backup.pinned:
            decision = Decision(backup.backup_id, backup.created_at, True, ["pinned"])
        elif backup.created_at >= now - timedelta(days=days):
            decision = Decision(backup.backup_id, backup.created_at, True,
                                [f"safety backup, kept {days} days (BACKUP_SAFETY_RETENTION_DAYS)"])
        else:
            decision = Decision(backup.backup_id, backup.created_at, False,
                                note=f"safety backup older than {days} days (BACKUP_SAFETY_RETENTION_DAYS)")
        rows.append((backup, decision))
    return sorted(rows, key=lambda row: row[0].created_at, reverse=True)


def prune(user=None, request=None, only=None):
    """Delete what the plan does not keep. Returns {"deleted": [ids], "kept": n, "errors": {id: text}}.
    A backup that cannot be deleted now (being restored) is reported and left for the next run.
    ``only``: the backup ids a person confirmed; the plan is made again and only those it still
    deletes go (one the plan now keeps stays, one it newly deletes waits for the next prune)."""
    rows = plan()
    doomed = [d for _b, d in rows if not d.keep and (only is None or d.key in only)]
    result = {"deleted": [], "kept": sum(1 for _b, d in rows if d.keep), "errors": {}}
    for decision in doomed:
        try:
            delete_backup(decision.key, user, request, action="backup.prune", details={"reason": decision.note})
        except BackupError as exc:
            result["errors"][decision.key] = str(exc)
            continue
        result["deleted"].append(decision.key)
    return result


def set_pinned(backup_id, pinned, user=None, request=None):
    """Pin (keep whatever the policy says) or unpin a backup; returns it."""
    backup = get_backup(backup_id, completed=False)
    Backup.objects.filter(pk=backup.pk).update(pinned=pinned)
    backup.pinned = pinned
    audit.record("backup.pin" if pinned else "backup.unpin", user=user, request=request, target=backup.backup_id)
    return backup


def pin(backup_id, user=None, request=None):
    return set_pinned(backup_id, True, user, request)


def unpin(backup_id, user=None, request=None):
    return set_pinned(backup_id, False, user, request)
