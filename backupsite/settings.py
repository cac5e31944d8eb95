"""Settings for the backup app. Everything an operator changes comes from the environment;
with no environment at all the app runs a self-contained demo (SQLite app DB, ORM broker,
local backup folder, demo data stack under ./var/demo)."""

import importlib.util
import os
import secrets
from pathlib import Path

import dj_database_url

from backupsite.env import Environment
from backupsite.sources import build_backup_sources
from backupsite.storage_env import storage_entry

env = Environment(os.environ)
env_bool, env_int, env_str = env.bool, env.int, env.str
BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", BASE_DIR / "var"))


def _secret_key():
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    # Demo default: a key generated once and kept under var/ so sessions survive restarts. It is
    # written whole under a name of its own and linked into place, the first process to link it
    # winning: processes starting together (the web server, a worker, a command) read one key.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        draft = key_file.with_name(f".secret_key.{os.getpid()}")
        with open(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass  # another process's key is in place: that one is used
        finally:
            draft.unlink()
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # The admin's modules are loaded by the URLconf (urls.py calls admin.autodiscover()), not at
    # start-up: a backup command never serves a page, and they were ~0.04 s and ~1 MB of each one.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "backups_app",
]
# django-ninja is not an installed app: as one it is imported at start-up, and with it the whole
# API stack (pydantic), ~0.4 s of every management command. The API docs' page and assets come
# from its folders instead (backups_app/api/docs.py); found without importing the package.
NINJA_DIR = Path(importlib.util.find_spec("ninja").submodule_search_locations[0])

MIDDLEWARE = [
    "backups_app.logs.RequestIdMiddleware",  # first: every log line of a request carries its id
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Request bodies (API JSON, admin forms) beyond 1 MiB are refused: the API answers 413 {error, detail}.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

ROOT_URLCONF = "backupsite.urls"
WSGI_APPLICATION = "backupsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'app.sqlite3'}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share the file: wait for locks instead of failing, let
    # readers and a writer work at once (WAL), and take the write lock when a transaction starts
    # (IMMEDIATE) so two upgrading readers never deadlock into "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates read one way everywhere (backups_app/formatting.py): the admin takes its formats from there.
FORMAT_MODULE_PATH = ["backupsite.formats"]
STATIC_URL = "static/"
STATIC_ROOT = env_str("STATIC_ROOT") or None  # set where collectstatic runs (Docker image)
# WhiteNoise serves the admin's static files from the apps directly, so `make run` needs no
# collectstatic step; the Docker image runs collectstatic and serves the same files.
WHITENOISE_USE_FINDERS = True
STATICFILES_DIRS = [NINJA_DIR / "static"]  # ninja/swagger-ui-bundle.js, ... for the API docs

BACKUP_DIR = Path(env_str("BACKUP_DIR", BASE_DIR / "backups"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # BACKUP_STORAGE=local (default, BACKUP_DIR) | s3 (BACKUP_S3_*): see docs/storage.md.
    "backups": storage_entry(env, "BACKUP_", BACKUP_DIR),
}
# Archive storage: offsite copy, presigned downloads, age encryption (docs/storage.md).
BACKUP_STORAGE = env_str("BACKUP_STORAGE", "local") or "local"
BACKUP_OFFSITE_STORAGE = env_str("BACKUP_OFFSITE_STORAGE", "")
if BACKUP_OFFSITE_STORAGE:
    STORAGES["backups_offsite"] = storage_entry(env, "BACKUP_OFFSITE_", None)
# Browser downloads of one artifact from S3 redirect to a presigned URL valid this many seconds.
BACKUP_S3_PRESIGNED_DOWNLOADS = env_bool("BACKUP_S3_PRESIGNED_DOWNLOADS", False)
BACKUP_S3_PRESIGNED_EXPIRY = env_int("BACKUP_S3_PRESIGNED_EXPIRY", 300)
# age X25519 public keys (comma list): set => every artifact is encrypted at rest.
BACKUP_AGE_RECIPIENTS = env.list("BACKUP_AGE_RECIPIENTS")
# The private key file for restores (age-keygen format); not needed to back up or to verify.
BACKUP_AGE_IDENTITY_FILE = env_str("BACKUP_AGE_IDENTITY_FILE", "")
# Secret keys (comma list; the first signs) that authenticate each set's metadata.json, so a new
# server imports from storage only sets this deployment wrote (docs/disaster-recovery.md).
BACKUP_SIGNING_KEY = env.list("BACKUP_SIGNING_KEY")

DEMO_DIR = VAR_DIR / "demo"
BACKUP_SOURCES = build_backup_sources(os.environ, demo_dir=DEMO_DIR)

# zstd (default) | gzip | none, for the artifacts we compress ourselves.
BACKUP_COMPRESSION = env_str("BACKUP_COMPRESSION", "zstd")
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 30)
BACKUP_MAX_COUNT = env_int("BACKUP_MAX_COUNT", 10)
BACKUP_KEEP_SAFETY = env_bool("BACKUP_KEEP_SAFETY", False)
# How many components of one backup are taken at once (services/parallel.py); read at use and
# checked by backups.E013.
BACKUP_PARALLEL = env_str("BACKUP_PARALLEL", "2")
# A run whose heartbeat is older than this is considered dead (worker killed, machine lost).
BACKUP_STALE_SECONDS = env_int("BACKUP_STALE_SECONDS", 300)
BACKUP_HEARTBEAT_SECONDS = env_int("BACKUP_HEARTBEAT_SECONDS", 10)
# A run still pending after this long was never started by a worker (none running, or killed
# before it began): the sweep fails it, and frees a restore's lock (it changed nothing).
BACKUP_PENDING_SECONDS = env_int("BACKUP_PENDING_SECONDS", 900)
# A queued run no worker started this long after it was queued is queued again (its task may have
# been lost with a machine: the Redis broker hands a task out once); harmless if the first arrives.
BACKUP_REQUEUE_SECONDS = env_int("BACKUP_REQUEUE_SECONDS", 120, low=1)
# Every worker process sweeps stale runs this often (one sweep at a time across machines; 0: only
# when a worker starts and on the django-q2 schedule).
BACKUP_SWEEP_SECONDS = env_int("BACKUP_SWEEP_SECONDS", 60, low=0)
# This machine's or worker's name on the runs it claims (admin, API, /metrics); default: the host
# name. Not Q_CLUSTER["name"], which every worker must share (docs/scale-out.md).
BACKUP_WORKER_NAME = env_str("BACKUP_WORKER_NAME", "")
# Local scratch space for artifacts that must exist as a file (SQLite backup API, restore staging).
BACKUP_SPOOL_DIR = Path(env_str("BACKUP_SPOOL_DIR", VAR_DIR / "spool"))
# JSON: {"pre_restore": [{"command": ["systemctl", "stop", "worker"], "on_error": "fail"}], ...};
# parsed and checked at use (services/hooks.py), so a typo fails the run and the system check.
BACKUP_HOOKS = env_str("BACKUP_HOOKS", "{}")
# Retrieval probes (backups_app/probes.py), read at use and checked by backups.E040-E042: stored
# points per vector collection whose exact top-10 neighbours the backup records, the lowest
# recall@10 a rehearsal or restore may give, and an app-level probe command run after a restore.
BACKUP_PROBES = env_str("BACKUP_PROBES", "5")
BACKUP_PROBE_MIN_RECALL = env_str("BACKUP_PROBE_MIN_RECALL", "1.0")
BACKUP_PROBE_COMMAND = env_str("BACKUP_PROBE_COMMAND", "")

# --- Operations: retention, schedules, health, metrics, notifications (docs/operations.md) ---
# Retention with restic's meaning; counts: 0 = rule off, -1 = unlimited; durations like 7d, 1y6m, 36h.
BACKUP_KEEP_LAST = env_int("BACKUP_KEEP_LAST", 0)
BACKUP_KEEP_HOURLY = env_int("BACKUP_KEEP_HOURLY", 0)
BACKUP_KEEP_DAILY = env_int("BACKUP_KEEP_DAILY", 7)
BACKUP_KEEP_WEEKLY = env_int("BACKUP_KEEP_WEEKLY", 0)
BACKUP_KEEP_MONTHLY = env_int("BACKUP_KEEP_MONTHLY", 0)
BACKUP_KEEP_YEARLY = env_int("BACKUP_KEEP_YEARLY", 0)
BACKUP_KEEP_WITHIN = env_str("BACKUP_KEEP_WITHIN", "")
BACKUP_KEEP_WITHIN_HOURLY = env_str("BACKUP_KEEP_WITHIN_HOURLY", "")
BACKUP_KEEP_WITHIN_DAILY = env_str("BACKUP_KEEP_WITHIN_DAILY", "")
BACKUP_KEEP_WITHIN_WEEKLY = env_str("BACKUP_KEEP_WITHIN_WEEKLY", "")
BACKUP_KEEP_WITHIN_MONTHLY = env_str("BACKUP_KEEP_WITHIN_MONTHLY", "")
BACKUP_KEEP_WITHIN_YEARLY = env_str("BACKUP_KEEP_WITHIN_YEARLY", "")
BACKUP_RETENTION_TIME_ZONE = env_str("BACKUP_RETENTION_TIME_ZONE", "")  # default: TIME_ZONE
BACKUP_SAFETY_RETENTION_DAYS = env_int("BACKUP_SAFETY_RETENTION_DAYS", 7)
BACKUP_PRUNE_AFTER_BACKUP = env_bool("BACKUP_PRUNE_AFTER_BACKUP", True)
# django-q2 schedules written by `manage.py setup_schedules` (cron in TIME_ZONE; empty = no schedule).
BACKUP_SCHEDULE_DAILY = env_str("BACKUP_SCHEDULE_DAILY", "0 2 * * *")
BACKUP_SCHEDULE_WEEKLY = env_str("BACKUP_SCHEDULE_WEEKLY", "0 3 * * 0")
BACKUP_SCHEDULE_MONTHLY = env_str("BACKUP_SCHEDULE_MONTHLY", "0 4 1 * *")
BACKUP_SCHEDULE_REHEARSAL = env_str("BACKUP_SCHEDULE_REHEARSAL", "0 5 * * 0")
BACKUP_SCHEDULE_COMPONENTS = env_str("BACKUP_SCHEDULE_COMPONENTS", "")  # empty = every source
BACKUP_SWEEP_MINUTES = env_int("BACKUP_SWEEP_MINUTES", 5)
# Health: /api/system/health and `manage.py backup_health`.
BACKUP_MAX_AGE_HOURS = env_int("BACKUP_MAX_AGE_HOURS", 26)
BACKUP_MIN_FREE_MB = env_int("BACKUP_MIN_FREE_MB", 1024)
# Off on hosts that schedule with cron (scripts/backup/schedule.sh) and run no django-q2 cluster.
BACKUP_HEALTH_CHECK_WORKER = env_bool("BACKUP_HEALTH_CHECK_WORKER", True)
# /metrics is open to these addresses or networks (comma-separated), loopback by default.
BACKUP_METRICS_ALLOW = env_str("BACKUP_METRICS_ALLOW", "127.0.0.1,::1")
# Extra ways in for /metrics and the health endpoint: dotted paths to callable(request) -> bool.
BACKUP_MONITORING_AUTHENTICATORS = ["backups_app.services.tokens.request_has_valid_token"]
# Notifications: on failure always, on success when asked.
BACKUP_NOTIFY_EMAIL = env_str("BACKUP_NOTIFY_EMAIL", "")  # comma-separated addresses
BACKUP_NOTIFY_WEBHOOK = env_str("BACKUP_NOTIFY_WEBHOOK", "")  # Slack-compatible incoming webhook
BACKUP_NOTIFY_ON_SUCCESS = env_bool("BACKUP_NOTIFY_ON_SUCCESS", False)
BACKUP_NOTIFY_ATTEMPTS = env_int("BACKUP_NOTIFY_ATTEMPTS", 3)
BACKUP_NOTIFY_TIMEOUT = env_int("BACKUP_NOTIFY_TIMEOUT", 10)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "backups@localhost")
# --- end operations ---

# django-q2: a task runs at most Q_TIMEOUT seconds in the worker (then the worker is stopped and
# the sweep fails its run), so Q_TIMEOUT bounds the longest backup or restore queued to it (the
# CLI without --async has no bound). A task whose worker died is handed out again Q_RETRY seconds
# after it was taken; it must exceed Q_TIMEOUT, or a task still running would be handed out twice.
Q_TIMEOUT = env_int("Q_TIMEOUT", 1800, low=1)
Q_RETRY = env_int("Q_RETRY", Q_TIMEOUT + 60, low=Q_TIMEOUT + 1, fix=f"use more seconds than Q_TIMEOUT ({Q_TIMEOUT})")
Q_CLUSTER = {
    "name": "backups",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": Q_TIMEOUT,
    "retry": Q_RETRY,
    "max_attempts": 1,
    "catch_up": False,
    "orm": "default",
    # django-q2 pops this key when Q_CLUSTER_NAME is set and fails without it; no alternative
    # clusters are configured, and the system check backups.W030 explains Q_CLUSTER_NAME.
    "ALT_CLUSTERS": {},
}
if env_str("Q_REDIS_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = os.environ["Q_REDIS_URL"]

# What could not be read from the environment (reported by the system check backups.E020).
BACKUP_ENVIRONMENT_PROBLEMS = env.problems

# Every line to stderr with its time, level, logger, process and request id, secrets masked
# (backups_app/logs.py); unhandled exceptions of the web (django.request) and the worker (django-q,
# runs) with their traceback.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "backups_app.logs.RequestIdFilter"}},
    "formatters": {"masked": {"()": "backups_app.logs.MaskingFormatter",
                              "format": "%(asctime)s %(levelname)s %(name)s pid=%(process)d request=%(request_id)s "
                                        "%(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": "masked"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "backups_app": {"level": env_str("BACKUP_LOG_LEVEL", "INFO")},
        "django": {"level": "INFO"},  # django.request: 5xx with traceback (not only with DEBUG)
        "django-q": {"level": env_str("Q_LOG_LEVEL", "INFO")},
    },
}
