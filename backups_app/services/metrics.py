"""Prometheus metrics, computed from the app database at scrape time: runs happen in worker
processes, so in-process counters would only ever see the web process's share.

Run totals come from RunCounter (incremented when a run finishes) so they only go up even when
pruning deletes Backup rows."""

from django.db.models import Count, F, Max, Value
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from backups_app.models import Backup, Restore, RunCounter, RunStatus, Verification
from backups_app.services import health, verification


def counter_kind(run):
    if isinstance(run, Backup):
        return "backup" if run.kind == Backup.Kind.REGULAR else "safety_backup"
    if isinstance(run, Restore):
        return "restore"
    return f"verification_{run.kind}"


def count_run(run):
    kind = counter_kind(run)
    RunCounter.objects.get_or_create(kind=kind, status=run.status)  # safe when two workers race
    RunCounter.objects.filter(kind=kind, status=run.status).update(count=F("count") + 1)


class BackupCollector:
    def collect(self):
        totals = {(c.kind, c.status): c.count for c in RunCounter.objects.all()}
        for kind, metric, text in (("backup", "backup_runs", "Finished backups by status."),
                                   ("restore", "restore_runs", "Finished restores by status.")):
            family = CounterMetricFamily(metric, text, labels=["status"])
            statuses = [RunStatus.COMPLETED, RunStatus.FAILED] + ([RunStatus.ROLLED_BACK] if kind == "restore" else [])
            for status in statuses:
                family.add_metric([status], totals.get((kind, status), 0))
            yield family

        last_success = GaugeMetricFamily("backup_last_success_timestamp_seconds",
                                         "When the newest completed backup of each component finished.",
                                         labels=["component"])
        for name, backup in sorted(health.newest_success().items()):
            last_success.add_metric([name], (backup.finished_at or backup.created_at).timestamp())
        yield last_success

        last_verified = GaugeMetricFamily("backup_last_verified_timestamp_seconds",
                                          "When a verification of a stored backup holding each component last "
                                          "passed.", labels=["component"])
        passed = Verification.objects.filter(status=RunStatus.COMPLETED, backup__isnull=False).order_by("-finished_at")
        for name, check in sorted(health.newest_runs(passed.only("components", "finished_at"))[1].items()):
            last_verified.add_metric([name], check.finished_at.timestamp())
        yield last_verified

        newest = Backup.objects.filter(status=RunStatus.COMPLETED, kind=Backup.Kind.REGULAR).first()
        if newest is not None:
            yield GaugeMetricFamily("backup_duration_seconds", "How long the newest completed backup took.",
                                    value=newest.duration.total_seconds() if newest.duration else 0)
            yield GaugeMetricFamily("backup_size_bytes", "Stored size of the newest completed backup.",
                                    value=newest.size_bytes)

        success = GaugeMetricFamily("backup_verification_success",
                                    "1 if the newest verification of this kind passed, else 0.", labels=["kind"])
        restore_seconds = GaugeMetricFamily("backup_rehearsal_restore_seconds",
                                            "Measured restore time per component in the newest rehearsal.",
                                            labels=["component"])
        for kind in Verification.Kind.values:
            last = verification.latest(kind)
            if last is None:
                continue
            success.add_metric([kind], 1 if last.status == RunStatus.COMPLETED else 0)
            if kind == Verification.Kind.DEEP:
                for name, result in sorted(last.results.items()):
                    if "seconds" in result:
                        restore_seconds.add_metric([name], result["seconds"])
        yield success
        yield restore_seconds
        yield from worker_metrics()


RUN_KINDS = (("backup", Backup), ("restore", Restore), ("verification", Verification))


def worker_metrics():
    """Which machine does what: runs in progress per host and worker, and when each host last
    finished a run of each kind (runs record both when claimed: services/workers.py). Two queries,
    each over the three kinds of run."""
    active = GaugeMetricFamily("backup_runs_in_progress", "Runs in progress by kind, host and worker.",
                               labels=["kind", "host", "worker"])
    finished = GaugeMetricFamily("backup_host_last_finished_timestamp_seconds",
                                 "When each host last finished a run of each kind.", labels=["kind", "host"])
    for row in of_every_kind(lambda runs: runs.filter(status=RunStatus.IN_PROGRESS).values("host", "worker")
                             .annotate(n=Count("id"))).order_by("kind", "host", "worker"):
        active.add_metric([row["kind"], row["host"], row["worker"]], row["n"])
    for row in of_every_kind(lambda runs: runs.exclude(host="").exclude(finished_at=None).values("host")
                             .annotate(at=Max("finished_at"))).order_by("kind", "host"):
        finished.add_metric([row["kind"], row["host"]], row["at"].timestamp())
    yield active
    yield finished


def of_every_kind(grouped):
    """``grouped(runs)`` of backups, restores and verifications as one query, each row with its ``kind``."""
    first, *others = (grouped(model.objects.order_by()).annotate(kind=Value(kind)) for kind, model in RUN_KINDS)
    return first.union(*others, all=True)


def render():
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackupCollector())
    return generate_latest(registry)
