"""Health checks shared by ``GET /api/system/health`` and ``manage.py backup_health``:

- backups: the newest completed backup of every configured source that is not damaged is younger
  than BACKUP_MAX_AGE_HOURS, and none of its backups is damaged (its latest verification failed);
- storage: the backup storage answers a listing, and (local storage) has BACKUP_MIN_FREE_MB free;
  a local folder not created yet is fine while no backup was ever made (the first one creates it);
- worker: the django-q2 scheduler is alive, seen through the stale-run sweep schedule, which a
  running cluster moves forward every few minutes (cluster stats live in a per-process cache
  with the default setup, so they cannot be read from here);
- rehearsal: the newest restore rehearsal did not fail.
"""

import ipaddress
import operator
import os
import shutil
from datetime import timedelta
from functools import reduce
from typing import NamedTuple

from django.conf import settings
from django.db.models import Q, Subquery
from django.utils import timezone
from django_q.models import Schedule

from backups_app import components
from backups_app.archive.storage import backup_storage
from backups_app.errors import ConfigurationError
from backups_app.models import Backup, RunStatus, Verification
from backups_app.parsing import comma_list
from backups_app.services import verification
from backups_app.services.schedules import SWEEP_NAME

# The scheduler runs every 30 s; a sweep overdue by more than this means no cluster is running.
SCHEDULER_GRACE = timedelta(minutes=2)


def completed_backups():
    """Completed regular backups, newest first, with ``verified`` (``damaged``) annotated."""
    return Backup.objects.filter(status=RunStatus.COMPLETED, kind=Backup.Kind.REGULAR).with_last_check().only(
        "backup_id", "components", "created_at", "finished_at", "size_bytes", "started_at", "offsite_status",
        "offsite_verified_at")


def newest_runs(runs):
    """``(newest, {source: the newest that holds it})`` of ``runs`` (a queryset, newest first), for
    the configured sources: one query reading at most one row per source, however long the history."""
    names = components.source_names()
    picks = [runs, *(runs.filter(components__holds=name) for name in names)]
    newest = list(runs.filter(reduce(operator.or_, (Q(pk=Subquery(pick.values("pk")[:1])) for pick in picks))))
    found = {}
    for run in newest:  # newest first: a run newest for one source may hold others
        for name in run.components:
            found.setdefault(name, run)
    return (newest[0] if newest else None), {name: found[name] for name in names if name in found}


class BackupHistory(NamedTuple):
    """What the backups check reads: ``newest``: {source: its newest completed regular backup that is
    not damaged}; ``damaged``: the damaged ones (their latest verification failed), newest first."""

    newest: dict
    damaged: list


def backup_history():
    """Two queries whatever the history holds (three when a source's newest backup is damaged): only
    backups that ever failed a verification can be damaged, and those are few."""
    ever_failed = Verification.objects.filter(status=RunStatus.FAILED).values("backup")
    damaged = list(completed_backups().filter(pk__in=ever_failed, last_check=RunStatus.FAILED))
    damaged_pks = {backup.pk for backup in damaged}
    newest = newest_runs(completed_backups())[1]
    if any(backup.pk in damaged_pks for backup in newest.values()):  # then look past the damaged ones
        newest = newest_runs(completed_backups().exclude(pk__in=damaged_pks))[1]
    return BackupHistory(newest, damaged)


def newest_success():
    """{source: newest completed regular Backup that contains it and is not damaged}."""
    return backup_history().newest


def check_backups(now, history):
    """``history``: ``backup_history()``."""
    limit = timedelta(hours=settings.BACKUP_MAX_AGE_HOURS)
    newest, damaged = history.newest, {}
    for backup in history.damaged:
        for name in backup.components:
            damaged.setdefault(name, []).append(backup.backup_id)
    result = {}
    for name in components.source_names():
        backup, problems = newest.get(name), []
        if backup is None:
            result[name] = {}
            problems.append("no completed backup yet" if name not in damaged else "no backup that is not damaged")
        else:
            age = now - (backup.finished_at or backup.created_at)
            result[name] = {"backup_id": backup.backup_id, "age_hours": round(age.total_seconds() / 3600, 2)}
            if age > limit:
                problems.append(f"newest backup is older than {settings.BACKUP_MAX_AGE_HOURS} h (BACKUP_MAX_AGE_HOURS)")
        if name in damaged:
            result[name]["damaged"] = damaged[name]
            problems.append(f"damaged backup(s) {', '.join(damaged[name])}: the latest verification failed; verify "
                            "again (manage.py verifybackup ID), or delete it and take a new backup")
        result[name] = {"ok": not problems, **result[name], **({"error": "; ".join(problems)} if problems else {})}
    if not result:
        return {"ok": False, "components": {}, "error": "no backup source is configured"}
    return {"ok": all(r["ok"] for r in result.values()), "components": result}


def check_storage(backups_recorded=None):
    """``backups_recorded``: whether any completed backup is recorded (None: asked of the database,
    only when the local folder is missing)."""
    storage = backup_storage()
    location = getattr(storage, "location", None)
    if location and not os.path.exists(location):
        if backups_recorded is None:
            backups_recorded = Backup.objects.filter(status=RunStatus.COMPLETED).exists()
        if not backups_recorded:
            return check_folder_to_create(location)
    try:
        storage.listdir("")
    except Exception as exc:  # any backend error means we cannot write backups there
        return {"ok": False, "error": f"backup storage is unreachable: {type(exc).__name__}: {exc}"}
    result = {"ok": True}
    if location and os.path.isdir(location):
        free_mb = shutil.disk_usage(location).free // (1024 * 1024)
        result["free_mb"] = free_mb
        if free_mb < settings.BACKUP_MIN_FREE_MB:
            result.update(ok=False, error=f"only {free_mb} MB free, less than BACKUP_MIN_FREE_MB "
                                          f"({settings.BACKUP_MIN_FREE_MB})")
    return result


def check_folder_to_create(location):
    """A fresh install: the local backup folder does not exist yet and no backup was ever made
    (with backups recorded, a missing folder is an unmounted disk: unreachable). The first backup
    creates it, so only its nearest existing parent must be writable."""
    parent = os.path.dirname(os.path.abspath(location))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        why = "is not a folder" if not os.path.isdir(parent) else "is not writable"
        return {"ok": False, "error": f"no backup yet, and the backup folder {location} cannot be created: "
                                      f"{parent} {why}"}
    return {"ok": True, "free_mb": shutil.disk_usage(parent).free // (1024 * 1024),
            "note": f"no backup yet: the first backup creates {location}"}


def sweep_schedule():
    return Schedule.objects.filter(name=SWEEP_NAME).first()


def check_worker(now, sweep):
    """``sweep``: ``sweep_schedule()``."""
    if not settings.BACKUP_HEALTH_CHECK_WORKER:
        return {"ok": True, "note": "not checked (BACKUP_HEALTH_CHECK_WORKER is off)"}
    if sweep is None:
        return {"ok": False, "error": "no schedules: run `python manage.py setup_schedules`"}
    overdue = now - sweep.next_run
    if overdue > SCHEDULER_GRACE:
        return {"ok": False, "error": f"the scheduler has not run for {int(overdue.total_seconds() // 60)} min: "
                                      "is `python manage.py qcluster` running?"}
    return {"ok": True}


def check_rehearsal(last):
    """``last``: the newest finished deep verification (``verification.latest``), or None."""
    if last is None:
        return {"ok": True, "note": "no restore rehearsal yet"}
    result = {"ok": last.status == RunStatus.COMPLETED, "backup_id": last.source_backup_id,
              "finished_at": last.finished_at.isoformat() if last.finished_at else None}
    if last.status != RunStatus.COMPLETED:
        result["error"] = last.error or "the rehearsal failed"
    return result


def check_health(now=None):
    return health_report(now or timezone.now(), backup_history(), sweep_schedule(),
                         verification.latest(Verification.Kind.DEEP))


def health_report(now, history, sweep, last_rehearsal, backups_recorded=None):
    """The checks over what the caller already read (the dashboard reads the same rows)."""
    checks = {"backups": check_backups(now, history), "storage": check_storage(backups_recorded),
              "worker": check_worker(now, sweep), "rehearsal": check_rehearsal(last_rehearsal)}
    healthy = all(c["ok"] for c in checks.values())
    return {"status": "ok" if healthy else "fail", "checked_at": now.isoformat(), "checks": checks}


def allowed_networks():
    """BACKUP_METRICS_ALLOW: the addresses and networks that may read health and metrics."""
    networks = []
    for entry in comma_list(settings.BACKUP_METRICS_ALLOW):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigurationError(f"BACKUP_METRICS_ALLOW: {entry!r} is not an address or network "
                                     "(e.g. 10.0.0.0/8).") from None
    return networks
