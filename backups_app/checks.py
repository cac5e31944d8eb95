"""System checks: configuration mistakes are reported at startup with a hint, not at 2 a.m.

Ids: E00x sources, hooks and the environment; E01x operations (retention, schedules, monitoring,
parallel backups);
E1xx archive storage and encryption; E03x/W03x workers (scale-out); E04x retrieval probes; W for what
works but is probably not meant.

All are tagged ``backups`` (TAG): `manage.py check` runs them with Django's, and our management
commands (commands/_base.py) run only these before they start, not the admin's or the URL
checks (which import the whole API stack)."""

import os
import shutil

from croniter import croniter
from django.conf import settings
from django.core.checks import Error, Warning, register

from backups_app import components
from backups_app.archive import crypto, signing
from backups_app.archive.storage import OFFSITE_ALIAS
from backups_app.errors import ConfigurationError
from backups_app.services import health, hooks, parallel, retention

TAG = "backups"
SCHEDULE_SETTINGS = ("BACKUP_SCHEDULE_DAILY", "BACKUP_SCHEDULE_WEEKLY", "BACKUP_SCHEDULE_MONTHLY",
                     "BACKUP_SCHEDULE_REHEARSAL")


@register(TAG)
def check_environment(app_configs, **kwargs):
    return [Error(problem, hint="Fix the variable (scripts/backup/config.env.example lists them all).",
                  id="backups.E020") for problem in getattr(settings, "BACKUP_ENVIRONMENT_PROBLEMS", [])]


@register(TAG)
def check_sources(app_configs, **kwargs):
    errors = []
    components.reset()
    try:
        configured = components.all_components()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Fix BACKUP_SOURCES or the environment variables it is built from.",
                      id="backups.E001")]
    if not configured:
        errors.append(Warning("No backup source is configured.",
                              hint="Set POSTGRES_DB, UPLOADS_DIR, SQLITE_PATHS, ... (see README).", id="backups.W001"))
    for name, component in configured.items():
        for program, hint in component.required_programs():
            if not shutil.which(program):
                errors.append(Error(f"Source {name!r} needs {program}, which is not installed.", hint=hint,
                                    id="backups.E002"))
    return errors


@register(TAG)
def check_hooks(app_configs, **kwargs):
    try:
        unknown = sorted(set(hooks.all_hooks()) - set(hooks.STAGES))
    except ConfigurationError as exc:
        return [Error(str(exc), hint='Example: {"pre_restore": [{"command": ["systemctl", "stop", "app-worker"]}]}',
                      id="backups.E004")]
    errors = []
    if unknown:
        errors.append(Error(f"BACKUP_HOOKS has unknown stage(s) {', '.join(unknown)}.",
                            hint=f"Use {', '.join(hooks.STAGES)}.", id="backups.E003"))
    for stage in hooks.STAGES:
        try:
            hooks.configured(stage)
        except ConfigurationError as exc:
            errors.append(Error(str(exc), hint='Example: {"pre_restore": [{"command": ["systemctl", "stop", '
                                              '"app-worker"], "on_error": "fail"}]}', id="backups.E004"))
    return errors


@register(TAG)
def check_storage(app_configs, **kwargs):
    if "backups" not in settings.STORAGES:
        return [Error('STORAGES has no "backups" entry.', hint="See backupsite/settings.py for the default.",
                      id="backups.E005")]
    return []


def _storage_errors(alias, prefix):
    entry = settings.STORAGES.get(alias)
    if entry is None:
        return []
    options = entry.get("OPTIONS", {})
    if entry.get("BACKEND") == "storages.backends.s3.S3Storage":
        if not options.get("bucket_name"):
            return [Error(f'STORAGES["{alias}"] is S3 but has no bucket.',
                          hint=f"Set {prefix}S3_BUCKET (and {prefix}S3_ENDPOINT_URL for MinIO).", id="backups.E102")]
        if bool(options.get("access_key")) != bool(options.get("secret_key")):
            return [Error(f'STORAGES["{alias}"] has only one half of the S3 key pair.',
                          hint=f"Set both {prefix}S3_ACCESS_KEY_ID and {prefix}S3_SECRET_ACCESS_KEY, or neither "
                               "(then boto3 uses the instance role or ~/.aws).", id="backups.E103")]
    elif entry.get("BACKEND") == "django.core.files.storage.FileSystemStorage" and not options.get("location"):
        return [Error(f'STORAGES["{alias}"] is a local folder without a location.',
                      hint=f"Set {prefix}DIR.", id="backups.E104")]
    return []


def _where(alias):
    options = settings.STORAGES[alias].get("OPTIONS", {})
    return (options.get("endpoint_url"), options.get("bucket_name"), options.get("location"))


@register(TAG)
def check_archive_storage(app_configs, **kwargs):
    errors = []
    if settings.BACKUP_STORAGE not in ("local", "s3"):
        errors.append(Error(f"BACKUP_STORAGE={settings.BACKUP_STORAGE!r} is not supported.",
                            hint="Use local (BACKUP_DIR) or s3 (BACKUP_S3_*).", id="backups.E101"))
    if settings.BACKUP_OFFSITE_STORAGE not in ("", "local", "s3"):
        errors.append(Error(f"BACKUP_OFFSITE_STORAGE={settings.BACKUP_OFFSITE_STORAGE!r} is not supported.",
                            hint="Use local (BACKUP_OFFSITE_DIR) or s3 (BACKUP_OFFSITE_S3_*).", id="backups.E101"))
    errors += _storage_errors("backups", "BACKUP_") + _storage_errors(OFFSITE_ALIAS, "BACKUP_OFFSITE_")
    if OFFSITE_ALIAS in settings.STORAGES and "backups" in settings.STORAGES and _where("backups") == _where(
            OFFSITE_ALIAS):
        errors.append(Error("The offsite copy points at the same place as the primary backups.",
                            hint="Give BACKUP_OFFSITE_* another bucket, prefix or folder, ideally on other hardware.",
                            id="backups.E105"))
    if settings.BACKUP_S3_PRESIGNED_DOWNLOADS and settings.BACKUP_STORAGE != "s3":
        errors.append(Warning("BACKUP_S3_PRESIGNED_DOWNLOADS is on but backups are not stored in S3.",
                              hint="Downloads stream through the app; unset it or set BACKUP_STORAGE=s3.",
                              id="backups.W101"))
    return errors + _age_errors()


def _age_errors():
    errors = []
    try:
        public_keys = {str(r) for r in crypto.recipients()}
    except ConfigurationError as exc:
        return [Error(str(exc), hint="age-keygen -o key.txt prints the public key (age1…).", id="backups.E106")]
    path = settings.BACKUP_AGE_IDENTITY_FILE
    if not path:
        if public_keys:
            errors.append(Warning(
                "Backups are encrypted (BACKUP_AGE_RECIPIENTS) but BACKUP_AGE_IDENTITY_FILE is not set here.",
                hint="Restores need the private key; set BACKUP_AGE_IDENTITY_FILE on the machine that restores, "
                     "and keep a copy of the key away from the backups.", id="backups.W102"))
        return errors
    try:
        identities = crypto.identities()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Point BACKUP_AGE_IDENTITY_FILE at a file written by age-keygen.",
                      id="backups.E107")]
    if public_keys and not public_keys & {str(i.to_public()) for i in identities}:
        errors.append(Warning("No identity in BACKUP_AGE_IDENTITY_FILE matches BACKUP_AGE_RECIPIENTS: "
                              "new backups could not be restored with it.",
                              hint="Add the key file's public key (age-keygen -y key.txt) to BACKUP_AGE_RECIPIENTS.",
                              id="backups.W103"))
    if os.stat(path).st_mode & 0o077:
        errors.append(Warning(f"BACKUP_AGE_IDENTITY_FILE {path} is readable by other users.",
                              hint=f"chmod 600 {path}", id="backups.W104"))
    return errors


@register(TAG)
def check_signing(app_configs, **kwargs):
    keys = signing.keys()
    if not keys:
        return [Warning("BACKUP_SIGNING_KEY is not set: backup sets are written unsigned.",
                        hint="After losing this server, a new one cannot tell your sets from planted ones and imports "
                             "them from storage only with `syncbackups --trust-unsigned`. Set it to a long random "
                             "secret (python -c 'import secrets; print(secrets.token_hex(32))') and keep a copy with "
                             "the age identity, off the server.", id="backups.W105")]
    if len(keys[0]) < 32:
        return [Warning("BACKUP_SIGNING_KEY's signing key is shorter than 32 characters.",
                        hint="Put a new long random key first (the old one after it still verifies older sets).",
                        id="backups.W106")]
    return []


@register(TAG)
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


@register(TAG)
def check_schedules(app_configs, **kwargs):
    return [Error(f"{name}={getattr(settings, name)!r} is not a cron expression.",
                  hint="Five fields, e.g. '0 2 * * *'; empty for no such schedule.", id="backups.E011")
            for name in SCHEDULE_SETTINGS if getattr(settings, name) and not croniter.is_valid(getattr(settings, name))]


@register(TAG)
def check_monitoring(app_configs, **kwargs):
    try:
        health.allowed_networks()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Comma-separated addresses or networks, e.g. 127.0.0.1,10.0.0.0/8.",
                      id="backups.E012")]
    return []


@register(TAG)
def check_parallel(app_configs, **kwargs):
    try:
        parallel.parallel_limit()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="BACKUP_PARALLEL=2 takes two components of a backup at once; 1 takes them "
                      "one after another.", id="backups.E013")]
    return []


@register(TAG)
def check_workers(app_configs, **kwargs):
    """Several workers share one queue, named Q_CLUSTER["name"] (docs/scale-out.md)."""
    problems = []
    queue, alternative = settings.Q_CLUSTER.get("name"), os.environ.get("Q_CLUSTER_NAME", "")
    if alternative and alternative != queue:
        problems.append(Warning(
            f"Q_CLUSTER_NAME={alternative!r} makes this process use the django-q2 queue {alternative!r}, but backups "
            f"and restores are queued on {queue!r}: a worker started so never runs them.",
            hint="Unset Q_CLUSTER_NAME (and qcluster --name); name the machine with BACKUP_WORKER_NAME instead.",
            id="backups.W030"))
    if settings.BACKUP_REQUEUE_SECONDS >= settings.BACKUP_PENDING_SECONDS:
        problems.append(Warning(
            f"BACKUP_REQUEUE_SECONDS ({settings.BACKUP_REQUEUE_SECONDS}) is not below BACKUP_PENDING_SECONDS "
            f"({settings.BACKUP_PENDING_SECONDS}): a run whose task was lost is failed instead of queued again.",
            hint="Use a few minutes for BACKUP_REQUEUE_SECONDS, well below BACKUP_PENDING_SECONDS.", id="backups.W031"))
    return problems


@register(TAG)
def check_probes(app_configs, **kwargs):
    """BACKUP_PROBES, BACKUP_PROBE_MIN_RECALL and BACKUP_PROBE_COMMAND as probes.py reads them."""
    from backups_app import probes

    readers = ((probes.probe_count, "BACKUP_PROBES=5 (0 turns the probes off)", "backups.E040"),
               (probes.min_recall, "BACKUP_PROBE_MIN_RECALL=1.0 for exact search", "backups.E041"),
               (probes.probe_command, 'BACKUP_PROBE_COMMAND=\'["python", "/srv/app/rag_probe.py"]\'', "backups.E042"))
    errors = []
    for read, example, check_id in readers:
        try:
            read()
        except ConfigurationError as exc:
            errors.append(Error(str(exc), hint=f"Example: {example}.", id=check_id))
    return errors
