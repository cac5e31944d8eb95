"""REDIS_*, OBJECTS_* and CONFIG_* environment variables become sources; secrets stay out of
what is shown."""

from pathlib import Path

from django.utils.module_loading import import_string

from backups_app.components.config import ConfigComponent
from backups_app.components.objects import ObjectsComponent
from backups_app.components.redis import RedisComponent
from backupsite.sources import build_backup_sources

ENV = {
    "REDIS_URL": "redis://:redis-pw@cache:6379/0", "REDIS_DBS": "0, 1", "REDIS_RDB": "true",
    "OBJECTS_S3_ENDPOINT_URL": "http://minio:9000", "OBJECTS_S3_BUCKETS": "media,attachments",
    "OBJECTS_S3_PREFIX": "app/", "OBJECTS_S3_ACCESS_KEY_ID": "minio", "OBJECTS_S3_SECRET_ACCESS_KEY": "minio-pw",
    "OBJECTS_S3_REGION": "us-east-1", "OBJECTS_DIR": "/srv/objects",
    "CONFIG_PATHS": "/srv/app/.env,/srv/app/infra/docker-compose.yml", "CONFIG_BASE_DIR": "/srv/app",
}


def build(env):
    sources = build_backup_sources(env, demo_dir=Path("/demo"))
    return {name: import_string(entry["ENGINE"])(name, entry["OPTIONS"]) for name, entry in sources.items()}


def test_environment_builds_the_three_sources_and_turns_the_demo_off():
    built = build(ENV)
    assert sorted(built) == ["config", "objects", "redis"]
    redis, objects, config = built["redis"], built["objects"], built["config"]
    assert isinstance(redis, RedisComponent) and isinstance(objects, ObjectsComponent)
    assert isinstance(config, ConfigComponent)
    assert redis.describe() == {"url": "redis://cache:6379/0", "dbs": [0, 1], "rdb": True, "batch": 1000}
    assert redis.config["password"] == "redis-pw"
    assert objects.config["buckets"] == ["media", "attachments"] and objects.config["path"] == "/srv/objects"
    assert "minio-pw" not in str(objects.describe())
    assert [store.label for store in objects.stores()] == ["media", "attachments", "disk"]
    assert config.base_dir == "/srv/app"
    assert config.config["paths"] == ["/srv/app/.env", "/srv/app/infra/docker-compose.yml"]


def test_each_source_is_present_only_when_configured():
    assert sorted(build({"OBJECTS_DIR": "/srv/objects"})) == ["objects"]
    assert sorted(build({"CONFIG_PATHS": "/srv/app/.env"})) == ["config"]
    assert "redis" not in build({})
