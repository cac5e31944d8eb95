"""Build ``BACKUP_SOURCES`` from environment variables (names follow the seeds).

A source exists only when its variables are set. With no source configured at all, the demo
stack under ``demo_dir`` (a SQLite database and an uploads folder) is backed up so that a
fresh checkout has something real to back up and restore.
"""

ENGINES = {
    "postgres": "backups_app.components.postgres.PostgresComponent",
    "uploads": "backups_app.components.uploads.UploadsComponent",
    "sqlite": "backups_app.components.sqlite.SQLiteComponent",
    "redis": "backups_app.components.redis.RedisComponent",
    "objects": "backups_app.components.objects.ObjectsComponent",
    "config": "backups_app.components.config.ConfigComponent",
}
# Any of these turns the demo stack off: the operator configured real sources.
REAL_SOURCE_VARIABLES = ("POSTGRES_DB", "UPLOADS_DIR", "SQLITE_PATHS", "REDIS_URL", "OBJECTS_S3_BUCKETS", "OBJECTS_DIR",
                         "CONFIG_PATHS")


def _source(engine, **options):
    return {"ENGINE": ENGINES[engine], "OPTIONS": {k: v for k, v in options.items() if v not in (None, "")}}


def build_backup_sources(env, demo_dir):
    sources = {}
    if env.get("POSTGRES_DB"):
        sources["postgres"] = _source(
            "postgres",
            host=env.get("POSTGRES_HOST", "localhost"),
            port=env.get("POSTGRES_PORT", "5432"),
            user=env.get("POSTGRES_USER", "postgres"),
            password=env.get("POSTGRES_PASSWORD"),
            dbname=env["POSTGRES_DB"],
            bin_dir=env.get("PG_BIN_DIR"),
        )
    demo = not any(env.get(name) for name in REAL_SOURCE_VARIABLES)
    uploads_dir = env.get("UPLOADS_DIR") or (str(demo_dir / "uploads") if demo else None)
    if uploads_dir:
        sources["uploads"] = _source("uploads", path=uploads_dir)
    sqlite_paths = env.get("SQLITE_PATHS") or (str(demo_dir / "app.sqlite3") if demo else None)
    if sqlite_paths:
        sources["sqlite"] = _source("sqlite", paths=[p.strip() for p in sqlite_paths.split(",") if p.strip()])
    sources.update(_redis_objects_config_sources(env))
    return sources


def _redis_objects_config_sources(env):
    sources = {}
    if env.get("REDIS_URL"):
        sources["redis"] = _source("redis", url=env["REDIS_URL"], dbs=env.get("REDIS_DBS"), rdb=env.get("REDIS_RDB"))
    if env.get("OBJECTS_S3_BUCKETS") or env.get("OBJECTS_DIR"):
        sources["objects"] = _source(
            "objects",
            endpoint_url=env.get("OBJECTS_S3_ENDPOINT_URL"),
            buckets=env.get("OBJECTS_S3_BUCKETS"),
            prefix=env.get("OBJECTS_S3_PREFIX"),
            access_key_id=env.get("OBJECTS_S3_ACCESS_KEY_ID"),
            secret_access_key=env.get("OBJECTS_S3_SECRET_ACCESS_KEY"),
            region=env.get("OBJECTS_S3_REGION"),
            path=env.get("OBJECTS_DIR"),
        )
    if env.get("CONFIG_PATHS"):
        sources["config"] = _source("config", paths=env["CONFIG_PATHS"], base_dir=env.get("CONFIG_BASE_DIR"))
    return sources
