"""Run records. Models describe what happened; they never talk to a data store."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Trigger(models.TextChoices):
    ADMIN = "admin"
    API = "api"
    CLI = "cli"
    SCHEDULE = "schedule"
    RESTORE = "restore"  # the safety backup taken by a restore
    IMPORT = "import"  # found in storage by a catalog scan (services/catalog.py)


class RunStatus(models.TextChoices):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    DELETING = "deleting"  # a backup whose files are being removed: never offered, the sweep finishes it


class Run(models.Model):
    """What backups and restores share: who started it, when, how it went, and its log."""

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.CLI)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    components = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the run was last handed to the task queue (None: it runs in the process that asked);
    # the sweep hands a queued run that no worker started to the queue again (services/sweeping.py).
    queued_at = models.DateTimeField(null=True, blank=True)
    # The machine and the worker (BACKUP_WORKER_NAME and pid) that claimed the run (services/workers.py).
    host = models.CharField(max_length=255, blank=True, default="", db_index=True)
    worker = models.CharField(max_length=255, blank=True, default="")
    # Written when a worker claims the run; every later change of the run is conditional on it
    # (services/recorder.py), so a worker that lost the run to the sweep cannot overwrite it.
    lease = models.CharField(max_length=32, blank=True, default="", editable=False)
    # {component: {"state": "pending" | "running" | "done" | "failed" | "skipped" | "not_run" | ..., "bytes_done",
    #  "bytes_total", "started_at", ...}} (services/progress.py); read the state with ``state_of``.
    progress = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]
        # /metrics' "when each host last finished a run" reads this index, not the rows. On PostgreSQL
        # a GIN index on components also answers "the newest run holding X" (migration 0009).
        indexes = [models.Index(fields=["host", "finished_at"], name="%(class)s_host_done")]

    # The OperationLock holder name of a run that takes locks (restores); freed when it ends.
    lock_holder = None

    @property
    def is_active(self):
        return self.status in (RunStatus.PENDING, RunStatus.IN_PROGRESS)

    def state_of(self, component):
        """Where ``component`` is in this run: "pending" until the run reaches it."""
        return (self.progress.get(component) or {}).get("state", "pending")

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


@models.JSONField.register_lookup
class Holds(models.Lookup):
    """``components__holds="postgres"``: the JSON list holds that string, tested by the database
    (Django's ``contains`` has no SQLite version), so "the newest run holding X" is one query."""

    lookup_name = "holds"
    prepare_rhs = False  # the plain string, not JSON

    def as_sql(self, compiler, connection):  # MySQL and MariaDB
        return self.render("JSON_CONTAINS({lhs}, JSON_QUOTE({rhs}))", compiler, connection)

    def as_postgresql(self, compiler, connection):
        return self.render("{lhs} ? {rhs}", compiler, connection)  # jsonb ?: a top-level array element

    def as_sqlite(self, compiler, connection):
        return self.render("EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.value = {rhs})", compiler,
                           connection)

    def render(self, template, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return template.format(lhs=lhs, rhs=rhs), [*lhs_params, *rhs_params]


class OffsiteStatus(models.TextChoices):
    NONE = "", "no offsite copy"
    COPYING = "copying"
    VERIFIED = "verified"
    FAILED = "failed"


class BackupQuerySet(models.QuerySet):
    def with_last_check(self):
        """Annotated with ``last_check``: the status of each backup's newest finished verification
        (None when never verified); ``failed`` means the backup is damaged."""
        finished = Verification.objects.filter(backup=models.OuterRef("pk"),
                                               status__in=[RunStatus.COMPLETED, RunStatus.FAILED])
        newest = finished.order_by("-finished_at", "-id").values("status")[:1]
        return self.annotate(last_check=models.Subquery(newest))


class Backup(Run):
    class Kind(models.TextChoices):
        REGULAR = "regular"
        SAFETY = "safety"

    objects = BackupQuerySet.as_manager()

    backup_id = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REGULAR)
    description = models.CharField(max_length=500, blank=True, default="")
    size_bytes = models.BigIntegerField(default=0)
    # Pinned backups are never pruned by the retention policy.
    pinned = models.BooleanField(default=False, db_index=True)
    # The stored metadata.json, kept here too so lists and plans need no storage round trip.
    manifest = models.JSONField(default=dict, blank=True)
    # The copy in STORAGES["backups_offsite"], made and re-verified after the backup completes.
    offsite_status = models.CharField(max_length=16, choices=OffsiteStatus.choices, default=OffsiteStatus.NONE,
                                      blank=True)
    offsite_error = models.TextField(blank=True, default="")
    offsite_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta(Run.Meta):
        permissions = [
            ("download_backup", "Can download backup archives"),
            ("restore_backup", "Can restore from a backup"),
        ]

    def __str__(self):
        return self.backup_id

    @property
    def verified(self):
        """True when its newest finished verification passed, False when it failed (the backup is
        damaged: nobody's newest copy, flagged in health), None when it was never verified."""
        status = self.last_check if hasattr(self, "last_check") else (  # annotated by the lists
            Backup.objects.filter(pk=self.pk).with_last_check().values_list("last_check", flat=True).first())
        return None if status is None else status == RunStatus.COMPLETED

    @property
    def damaged(self):
        return self.verified is False

    @property
    def size_mb(self):
        return round(self.size_bytes / (1024 * 1024), 2)


class BackupArtifact(models.Model):
    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=255)
    component = models.CharField(max_length=100)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["name"]
        unique_together = [("backup", "name")]

    def __str__(self):
        return self.name


class Restore(Run):
    restore_id = models.CharField(max_length=64, unique=True)
    backup = models.ForeignKey(Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="restores")
    source_backup_id = models.CharField(max_length=64)
    options = models.JSONField(default=dict, blank=True)
    plan = models.JSONField(default=dict, blank=True)
    safety_backup = models.ForeignKey(Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self):
        return self.restore_id

    @property
    def lock_holder(self):
        return self.restore_id


class IssuedRunId(models.Model):
    """Every backup and restore id ever handed out. Never deleted: a deleted backup's id is not
    handed out again, so audit records and scripts holding an id always mean the same run. The
    unique name makes allocation safe under any concurrency (services/run_ids.py)."""

    run_id = models.CharField(max_length=64, unique=True)
    issued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "issued run id"

    def __str__(self):
        return self.run_id


class OperationLock(models.Model):
    """A row per held lock; the unique name makes acquiring atomic in any database."""

    name = models.CharField(max_length=64, unique=True)
    holder = models.CharField(max_length=64)
    acquired_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.name} held by {self.holder}"


class ApiToken(models.Model):
    """A bearer token for the REST API. Only its SHA-256 is stored: the token itself is shown once,
    when it is created. Revoked tokens stay listed (with when) but no longer authenticate."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    # The first characters, to tell tokens apart in lists without revealing them.
    prefix = models.CharField(max_length=12, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.prefix}… ({self.name or 'unnamed'}, {self.user})"
class Verification(Run):
    """A check of a stored backup. Quick: every artifact streamed through SHA-256. Deep (restore
    rehearsal): every component restored into a scratch target and its counts compared with the
    manifest, with the measured restore time per component (the real RTO)."""

    class Kind(models.TextChoices):
        QUICK = "quick"
        DEEP = "deep"

    backup = models.ForeignKey(Backup, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="verifications")
    source_backup_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.QUICK)
    # Quick: {artifact: {"ok", "error"}}. Deep: {component: {"ok", "seconds", "counts", "expected", "note"}}.
    results = models.JSONField(default=dict, blank=True)

    class Meta(Run.Meta):
        # /metrics' "when a verification holding X last passed" walks it from the newest.
        indexes = [*Run.Meta.indexes, models.Index(fields=["finished_at"], name="verification_finished")]

    def __str__(self):
        return f"{self.kind} verification of {self.source_backup_id}"


class RunCounter(models.Model):
    """Monotonic totals of finished runs by kind and status, for Prometheus counters: pruning
    deletes Backup rows, so counting rows would make the counters go down."""

    kind = models.CharField(max_length=16)
    status = models.CharField(max_length=16)
    count = models.BigIntegerField(default=0)

    class Meta:
        unique_together = [("kind", "status")]

    def __str__(self):
        return f"{self.kind} {self.status}: {self.count}"


class AuditEvent(models.Model):
    """Who did what, when and from where. Written by services/audit.py, read-only in the admin."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    # Kept as text so the record survives the user's deletion.
    username = models.CharField(max_length=150, blank=True, default="")
    # The client address for web requests, ``user@host`` for commands and scheduled tasks.
    origin = models.CharField(max_length=255, blank=True, default="")
    target = models.CharField(max_length=255, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target}"
