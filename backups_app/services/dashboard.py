"""What the admin index's dashboard shows (issue 17 §1), read in a fixed number of queries
whatever the history holds:

- per configured source: its newest backup that is not damaged and its age against
  BACKUP_MAX_AGE_HOURS (the RPO right now), its stored size over the last backups, its newest
  restore rehearsal (result, measured restore time: the RTO, probe recall per vector
  collection), its next scheduled backup and the offsite copy of its newest backup;
- the storage (used by the backups, free), the health checks (services/health.py) and the
  work pending or running.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Sum, Value
from django.utils import timezone
from django_q.models import Schedule

from backups_app import components
from backups_app.archive.storage import backup_storage, describe, offsite_storage
from backups_app.models import Backup, BackupArtifact, Restore, RunStatus, Verification
from backups_app.parsing import comma_list
from backups_app.services import health
from backups_app.services.schedules import BACKUP_TASK, REHEARSAL_TASK, SWEEP_NAME

#: The sparkline covers this many newest completed backups.
TREND_BACKUPS = 20
#: Past this share of BACKUP_MAX_AGE_HOURS the newest backup is amber; past all of it, red.
AMBER_SHARE = 0.75
ACTIVE = (RunStatus.PENDING, RunStatus.IN_PROGRESS)
FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED)


@dataclass
class SourceRow:
    name: str
    newest: Backup | None  # its newest completed backup that is not damaged
    age: timedelta | None
    freshness: str  # "ok" | "amber" | "red"
    problem: str  # what health says is wrong with its backups ("" when nothing)
    sizes: list = field(default_factory=list)  # its stored bytes in the last backups, oldest first
    rehearsal: Verification | None = None  # its newest finished deep verification
    next_backup: object = None  # when its next scheduled backup runs (None: not scheduled)

    @property
    def rehearsal_result(self):
        """This source's part of the rehearsal: {"ok", "seconds", "probes", "error", "note", ...}."""
        return self.rehearsal.results.get(self.name, {}) if self.rehearsal else {}

    @property
    def recall(self):
        """{collection: recall@10 (None when not measurable)} the rehearsal's probes measured."""
        return {collection: r["recall"] for collection, r in self.rehearsal_result.get("probes", {}).items()}


def freshness(age, limit):
    if age is None or age > limit:
        return "red"
    return "amber" if age > limit * AMBER_SHARE else "ok"


def size_trends():
    """{source: [stored bytes of its artifacts per backup, oldest first]} over the newest
    TREND_BACKUPS completed regular backups (one grouped query)."""
    recent = Backup.objects.filter(status=RunStatus.COMPLETED, kind=Backup.Kind.REGULAR).values("pk")[:TREND_BACKUPS]
    sizes = (BackupArtifact.objects.filter(backup__in=recent).values("backup", "component")
             .annotate(total=Sum("size_bytes"), created_at=F("backup__created_at")).order_by("created_at", "backup"))
    trends = {}
    for row in sizes:
        trends.setdefault(row["component"], []).append(row["total"])
    return trends


def rehearsals():
    """(the newest finished deep verification, {source: the newest one that covered it})."""
    return health.newest_runs(Verification.objects.filter(kind=Verification.Kind.DEEP, status__in=FINISHED))


def next_backup_runs(schedules):
    """{source: when the next scheduled backup that takes it runs} (BACKUP_SCHEDULE_COMPONENTS)."""
    upcoming = [s.next_run for s in schedules if s.func == BACKUP_TASK and s.repeats != 0 and s.next_run]
    if not upcoming:
        return {}
    scheduled = comma_list(settings.BACKUP_SCHEDULE_COMPONENTS) or components.source_names()
    return dict.fromkeys(scheduled, min(upcoming))


def storage_summary():
    """Where the backups are, the bytes and number of the completed sets there, the offsite storage."""
    totals = Backup.objects.filter(status=RunStatus.COMPLETED).aggregate(used=Sum("size_bytes"), sets=Count("pk"))
    target = offsite_storage()
    return {"where": describe(backup_storage()), "used_bytes": totals["used"] or 0, "sets": totals["sets"],
            "offsite": describe(target) if target else None}


def running_work():
    """The runs pending or in progress, newest first: [{"model", "pk", "name", "status", "created_at"}]."""
    def active(model, name_field):
        return (model.objects.filter(status__in=ACTIVE).order_by()
                .values("pk", "status", "created_at", model=Value(model._meta.model_name), name=F(name_field)))

    runs = active(Backup, "backup_id").union(active(Restore, "restore_id"),
                                             active(Verification, "source_backup_id"), all=True)
    return list(runs.order_by("-created_at"))


def gather(now=None):
    """Everything the dashboard shows (see the module's docstring)."""
    now = now or timezone.now()
    history = health.backup_history()
    schedules = list(Schedule.objects.order_by("next_run"))
    latest_rehearsal, rehearsed = rehearsals()
    storage = storage_summary()
    report = health.health_report(now, history, next((s for s in schedules if s.name == SWEEP_NAME), None),
                                  latest_rehearsal, backups_recorded=storage["sets"] > 0)
    free_mb = report["checks"]["storage"].get("free_mb")
    storage["free_bytes"] = None if free_mb is None else free_mb * 1024 * 1024
    limit = timedelta(hours=settings.BACKUP_MAX_AGE_HOURS)
    trends, upcoming = size_trends(), next_backup_runs(schedules)
    rows = []
    for name in components.source_names():
        backup = history.newest.get(name)
        age = now - (backup.finished_at or backup.created_at) if backup else None
        rows.append(SourceRow(name=name, newest=backup, age=age, freshness=freshness(age, limit),
                              problem=report["checks"]["backups"]["components"][name].get("error", ""),
                              sizes=trends.get(name, []), rehearsal=rehearsed.get(name),
                              next_backup=upcoming.get(name)))
    return {"rows": rows, "health": report, "storage": storage,
            "running": running_work(), "max_age_hours": settings.BACKUP_MAX_AGE_HOURS,
            "amber_hours": round(settings.BACKUP_MAX_AGE_HOURS * AMBER_SHARE, 1), "trend_backups": TREND_BACKUPS,
            "next_rehearsal": next((s.next_run for s in schedules if s.func == REHEARSAL_TASK and s.repeats != 0),
                                   None)}
