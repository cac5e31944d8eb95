"""BACKUP_SOURCES built from the environment (backupsite/sources.py): the demo stack when nothing is
configured, POSTGRES_* (the seed's variable names), REDIS_*, OBJECTS_*, CONFIG_*, QDRANT_* and
CHROMA_* become sources of valid components; secrets stay out of what is shown."""

from pathlib import Path

from django.utils.module_loading import import_string

from backups_app.components.config import ConfigComponent
from backups_app.components.objects import ObjectsComponent
from backups_app.components.redis import RedisComponent
from backupsite.sources import build_backup_sources
from tests.stacks import ENGINES


def test_no_environment_gives_the_demo_stack():
    built = build_backup_sources({}, demo_dir=Path("/demo"))
    assert set(built) == {"uploads", "sqlite"}
    assert built["uploads"]["OPTIONS"] == {"path": "/demo/uploads"}


def test_postgres_from_seed_variable_names():
    built = build_backup_sources({"POSTGRES_HOST": "db", "POSTGRES_USER": "brain", "POSTGRES_PASSWORD": "pw",
                                  "POSTGRES_DB": "knowledge"}, demo_dir=Path("/demo"))
    assert set(built) == {"postgres"}
    assert built["postgres"]["OPTIONS"] == {"host": "db", "user": "brain", "password": "pw", "dbname": "knowledge"}
    postgres = import_string(built["postgres"]["ENGINE"])("postgres", built["postgres"]["OPTIONS"])
    assert postgres.config == {"host": "db", "port": 5432, "user": "brain", "password": "pw", "dbname": "knowledge",
                               "bin_dir": "", "maintenance_db": "postgres", "role_passwords": False,
                               "vector_columns": []}


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


DEMO = Path("/nonexistent/demo")


def test_qdrant_from_host_port_url_or_path():
    sources = build_backup_sources({"QDRANT_HOST": "qdrant", "QDRANT_API_KEY": "k", "QDRANT_COLLECTIONS": "a,b",
                                    "QDRANT_KEEP_SNAPSHOTS": "1"}, DEMO)
    assert sources["qdrant"] == {"ENGINE": ENGINES["qdrant"],
                                 "OPTIONS": {"url": "http://qdrant:6333", "api_key": "k", "collections": "a,b",
                                             "keep_snapshots": "1"}}
    assert build_backup_sources({"QDRANT_HOST": "q", "QDRANT_PORT": "7000"}, DEMO)["qdrant"]["OPTIONS"] == {
        "url": "http://q:7000"}
    assert build_backup_sources({"QDRANT_URL": "https://q.example:6333", "QDRANT_HOST": "ignored"},
                                DEMO)["qdrant"]["OPTIONS"] == {"url": "https://q.example:6333"}
    assert build_backup_sources({"QDRANT_PATH": "/srv/q", "QDRANT_METHOD": "export", "QDRANT_TIMEOUT": "60"},
                                DEMO)["qdrant"]["OPTIONS"] == {"path": "/srv/q", "method": "export", "timeout": "60"}
    assert "qdrant" not in build_backup_sources({}, DEMO) and "chroma" not in build_backup_sources({}, DEMO)
    assert "uploads" not in sources  # a configured vector store turns the demo stack off


def test_chroma_from_path_or_host():
    assert build_backup_sources({"CHROMA_PATH": "/srv/chroma"}, DEMO)["chroma"] == {
        "ENGINE": ENGINES["chroma"], "OPTIONS": {"path": "/srv/chroma"}}
    assert build_backup_sources({"CHROMA_HOST": "chroma", "CHROMA_PORT": "8001"}, DEMO)["chroma"]["OPTIONS"] == {
        "host": "chroma", "port": "8001"}


def test_the_built_sources_are_valid_components():
    from backups_app.components.chroma import ChromaComponent
    from backups_app.components.qdrant import QdrantComponent

    sources = build_backup_sources({"QDRANT_HOST": "q", "QDRANT_COLLECTIONS": "a, b", "QDRANT_KEEP_SNAPSHOTS": "yes",
                                    "CHROMA_HOST": "c"}, DEMO)
    qdrant = QdrantComponent("qdrant", sources["qdrant"]["OPTIONS"])
    assert qdrant.config["collections"] == ["a", "b"] and qdrant.config["keep_snapshots"] is True
    assert qdrant.method == "snapshot"
    assert ChromaComponent("chroma", sources["chroma"]["OPTIONS"]).config["port"] == 8000
