"""The conformance suite every store runs, in the way restic's backend tests run against every
backend: one ``StoreCase`` per store module (``components.engines()``) knows how to make a small
live store of its kind, snapshot it exactly, change it and (where a store can be missing) point
the source at one that does not exist. The same tests then run against every store through the
services users call: an exact round trip (plain and age-encrypted), inspect() against the
manifest's counts, the restore rehearsal, the ``absent`` record of a safety backup, and no secret
in what a run stores or shows. A new store module without a case here fails the suite."""

import json
import os
import shutil
import sqlite3
import stat
import uuid
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import redis
from psycopg import sql

from backups_app import components
from backups_app.components.base import WHOLE_STORE
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores, verification
from tests.components.test_postgres import SCHEMA
from tests.conftest import new_bucket, pg_connect, pg_options, s3_client
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.django_db

SECRET = "Conformance-S3cret-7f3a9c"  # distinctive, so that any leak of it is found verbatim


class Env:
    """What a case may use: the test's own folder, fixtures on demand, cleanups at the end."""

    def __init__(self, request, tmp_path, stack):
        self.request, self.tmp, self.stack = request, tmp_path, stack

    def fixture(self, name):
        return self.request.getfixturevalue(name)


@dataclass
class StoreCase:
    target: Callable  # (env) -> OPTIONS of a new store: missing unless ``no_absent`` says why it cannot be
    fill: Callable  # (options) -> None: put real data of the store's kind there
    snapshot: Callable  # (options) -> everything the store holds, exactly
    mutate: Callable  # (options) -> None: change, delete and add data (changing some count)
    absent: Callable = None  # (options) -> what a safety backup of the missing target records as absent
    no_absent: str = ""
    secret: Callable = None  # (options) -> (options holding SECRET that back up, options holding it that fail)
    no_secret: str = ""
    restore_options: dict = None  # this store's options for a restore that puts the backup back exactly


# --- Folders and files --------------------------------------------------------------------------

def is_bak(rel):
    return any(part.endswith(".bak") for part in Path(rel).parts)


def tree(root, skip=lambda rel: False):
    """{path: (kind, mode, bytes | link target)} of everything under ``root``; None when missing."""
    if not os.path.lexists(root):
        return None
    found = {}
    for base, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = os.path.join(base, entry)
            rel = os.path.relpath(path, root)
            if skip(rel):
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", oct(stat.S_IMODE(info.st_mode)))
            else:
                found[rel] = ("file", oct(stat.S_IMODE(info.st_mode)), Path(path).read_bytes())
    return found


def fill_tree(root):
    root = Path(root)
    (root / "a" / "b" / "깊은 폴더").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_text("top")
    (root / "a" / "b" / "깊은 폴더" / "파일 ✓.bin").write_bytes(bytes(range(256)) * 300)
    (root / "a" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "a" / "run.sh").chmod(0o755)
    (root / "a" / "private.key").write_bytes(b"\x00key")
    (root / "a" / "private.key").chmod(0o600)
    os.symlink("../top.txt", root / "a" / "link-to-top")


def mutate_tree(root):
    root = Path(root)
    (root / "top.txt").write_text("changed after the backup")
    (root / "a" / "private.key").unlink()
    (root / "a" / "new.txt").write_text("added after the backup")
    (root / "a" / "run.sh").chmod(0o644)
    (root / "empty").rmdir()


def uploads_target(env):
    return {"path": str(env.tmp / "uploads")}


def config_target(env):
    base = env.tmp / "app"
    base.mkdir()
    return {"paths": f"{base / '.env'},{base / 'conf.d'}", "base_dir": str(base)}


def config_fill(options):
    base = Path(options["base_dir"])
    (base / ".env").write_text("DATABASE_URL=postgres://app@db/app\nDEBUG=0\n")
    (base / ".env").chmod(0o600)
    fill_tree(base / "conf.d")


def config_mutate(options):
    base = Path(options["base_dir"])
    (base / ".env").write_text("DEBUG=1\n")
    mutate_tree(base / "conf.d")


# --- SQLite -------------------------------------------------------------------------------------

def sqlite_target(env):
    return {"paths": str(env.tmp / "db" / "app.db")}


def sqlite_run(options, script):
    os.makedirs(os.path.dirname(options["paths"]), exist_ok=True)
    with closing(sqlite3.connect(options["paths"])) as conn, conn:
        conn.executescript(script)


def sqlite_fill(options):
    sqlite_run(options, """
        CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER REFERENCES docs(id), body BLOB);
        CREATE INDEX chunks_doc ON chunks (doc_id);
        CREATE VIEW titles AS SELECT title FROM docs;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
            INSERT INTO docs SELECT i, '제목 ' || i FROM n;
        INSERT INTO chunks (doc_id, body) SELECT id, randomblob(32) FROM docs;
        INSERT INTO chunks (doc_id, body) SELECT id, x'00ff' FROM docs WHERE id % 2;
    """)


def sqlite_snapshot(options):
    if not os.path.exists(options["paths"]):
        return None
    with closing(sqlite3.connect(options["paths"])) as conn:
        return list(conn.iterdump())


def sqlite_mutate(options):
    sqlite_run(options, """
        UPDATE docs SET title = 'changed' WHERE id < 5;
        DELETE FROM chunks WHERE doc_id > 40;
        INSERT INTO docs VALUES (1000, 'added');
        DROP VIEW titles;
        CREATE TABLE later (x);
    """)


# --- PostgreSQL ---------------------------------------------------------------------------------

# test_postgres's data, plus an index and a unique constraint for the snapshot to compare.
PG_SCHEMA = SCHEMA + """
CREATE INDEX documents_title ON documents (title);
ALTER TABLE authors ADD CONSTRAINT authors_name_key UNIQUE (name);
"""
USER_SCHEMAS = "NOT IN ('pg_catalog', 'information_schema')"
PG_CATALOG = {
    "columns": "SELECT table_schema, table_name, column_name, data_type, column_default, is_nullable "
               f"FROM information_schema.columns WHERE table_schema {USER_SCHEMAS} ORDER BY 1, 2, ordinal_position",
    "views": f"SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname {USER_SCHEMAS} ORDER BY 1, 2",
    "indexes": f"SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname {USER_SCHEMAS} ORDER BY 1, 2",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   f"WHERE connamespace::regnamespace::text {USER_SCHEMAS} ORDER BY 1, 2",
    "sequences": "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
}


def pg_target(env):
    return pg_options(env.fixture("make_pg_database")(create=False))


def pg_exists(dbname):
    with pg_connect("postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone() is not None


def pg_run(options, script):
    if not pg_exists(options["dbname"]):
        with pg_connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{options["dbname"]}"')
    with pg_connect(options["dbname"]) as conn:
        conn.execute(script)


def pg_snapshot(options):
    if not pg_exists(options["dbname"]):
        return None
    with pg_connect(options["dbname"]) as conn:
        found = {what: conn.execute(query).fetchall() for what, query in PG_CATALOG.items()}
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              f"WHERE table_type = 'BASE TABLE' AND table_schema {USER_SCHEMAS}").fetchall()
        for schema, table in tables:
            rows = conn.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            found[f"{schema}.{table}"] = sorted(rows.fetchall(), key=repr)
    return found


def pg_mutate(options):
    pg_run(options, """
        UPDATE documents SET title = 'changed', meta = '{}' WHERE id <= 5;
        DELETE FROM rag.chunks WHERE n = 3;
        DELETE FROM documents WHERE id > 40;
        INSERT INTO authors (name) VALUES ('added');
        SELECT nextval('ticket_seq');
        DROP VIEW document_titles;
        ALTER TABLE authors ADD COLUMN extra int DEFAULT 7;
    """)


def pg_secret(options):
    good = {**options, "password": SECRET}  # trust auth: any password is accepted
    return good, {**good, "port": free_port()}  # nothing listens there


# --- Redis --------------------------------------------------------------------------------------

REDIS_VALUES = {
    b"string": lambda c, key: c.get(key),
    b"hash": lambda c, key: c.hgetall(key),
    b"list": lambda c, key: c.lrange(key, 0, -1),
    b"set": lambda c, key: sorted(c.smembers(key)),
    b"zset": lambda c, key: c.zrange(key, 0, -1, withscores=True),
    b"stream": lambda c, key: c.xrange(key),
}


def redis_target(env):
    """A private redis-server (never the shared one) that needs a password, given in the URL."""
    return {"url": env.stack.enter_context(redis_server(password=SECRET))}


def redis_db(options, db):
    return redis.Redis.from_url(options["url"].rsplit("/", 1)[0] + f"/{db}")


def redis_fill(options):
    with closing(redis_db(options, 0)) as c0, closing(redis_db(options, 3)) as c3:
        c0.mset({f"str:{i}": f"value-{i}" * (i % 4 + 1) for i in range(20)})
        c0.set(b"bin:\x00\xff key", bytes(range(256)))
        c0.hset("hash", mapping={"a": "1", "b": b"\x00\x01"})
        c0.rpush("list", *[f"item-{i}" for i in range(30)])
        c0.sadd("set", *range(10))
        c0.zadd("zset", {f"m{i}": i / 3 for i in range(10)})
        c0.xadd("stream", {"n": 1, "payload": b"\x00bin"})
        c0.set("ttl:long", "x", ex=3600)
        c0.set("ttl:ms", "y", px=7_200_000)
        c3.hset("sessions:1", mapping={"user": "kim"})
        c3.set("cache:1", b"\x93" * 1000, ex=3600)


def redis_snapshot(options):
    """{db: {key: (type, value, TTL rounded to 100 s)}}: expiries are absolute, so the TTLs only
    shrink by the seconds the test takes."""
    with closing(redis_db(options, 0)) as client:
        dbs = sorted(int(db[2:]) for db in client.info("keyspace"))
    found = {}
    for db in dbs:
        with closing(redis_db(options, db)) as c:
            found[db] = {}
            for key in c.scan_iter():
                kind, ttl = c.type(key), c.pttl(key)
                found[db][key] = (kind, REDIS_VALUES[kind](c, key), ttl if ttl < 0 else round(ttl / 1000, -2))
    return found


def redis_mutate(options):
    with closing(redis_db(options, 0)) as c0, closing(redis_db(options, 5)) as c5:
        c0.set("str:1", "changed")
        c0.delete("list", "hash")
        c0.set("added", "after the backup")
        c0.persist("ttl:long")
        c0.expire("str:2", 3600)
        c5.set("new-db", "a db that was empty")


def redis_secret(options):
    return options, {"url": f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"}  # nothing listens there


# --- Objects: a local folder and an S3 bucket on moto, in one source ------------------------------

def objects_target(env):
    endpoint = env.fixture("moto_endpoint")
    return {"path": str(env.tmp / "objects"), "endpoint_url": endpoint, "buckets": new_bucket(endpoint, create=False),
            "access_key_id": "testing-key", "secret_access_key": "testing-secret", "region": "us-east-1"}


def objects_write(options, files, objects, deleted=()):
    """Files in the folder and objects in the bucket: {key: bytes | (bytes, put_object arguments)}."""
    root = Path(options["path"])
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    s3 = s3_client(options["endpoint_url"])
    for key, data in objects.items():
        body, extra = data if isinstance(data, tuple) else (data, {})
        s3.put_object(Bucket=options["buckets"], Key=key, Body=body, **extra)
    for key in deleted:
        (root / key).unlink()
        s3.delete_object(Bucket=options["buckets"], Key=key)


def objects_fill(options):
    s3_client(options["endpoint_url"]).create_bucket(Bucket=options["buckets"])
    objects_write(options, files={"docs/a.txt": b"alpha", "docs/deep/b.bin": bytes(range(256)), "top.json": b"{}"},
                  objects={"docs/a.txt": (b"alpha", {"ContentType": "text/plain; charset=utf-8",
                                                    "Metadata": {"owner": "kim", "n": "1"}}),
                           "docs/deep/b.bin": (bytes(range(256)), {"CacheControl": "max-age=60"}),
                           "top.json": (b"{}", {"ContentType": "application/json", "ContentEncoding": "identity"}),
                           "folder/": b"", "한글 키 ✓.txt": "문서".encode()})


def objects_snapshot(options):
    root = Path(options["path"])
    disk = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} \
        if root.exists() else None
    s3 = s3_client(options["endpoint_url"])
    bucket = options["buckets"]
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        return {"disk": disk, "bucket": None}
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    fields = ("ContentType", "ContentEncoding", "CacheControl", "Metadata")
    found = {}
    for item in listed:
        got = s3.get_object(Bucket=bucket, Key=item["Key"])
        found[item["Key"]] = (got["Body"].read(), {f: got.get(f) for f in fields})
    return {"disk": disk, "bucket": found}


def objects_mutate(options):
    objects_write(options, files={"top.json": b'{"changed": true}', "new/c.txt": b"added"},
                  objects={"top.json": (b'{"changed": true}', {"Metadata": {"new": "meta"}}), "new/c.txt": b"added"},
                  deleted=["docs/a.txt"])


def objects_secret(options):
    good = {**options, "secret_access_key": SECRET}  # moto accepts any key
    return good, {**good, "buckets": new_bucket(options["endpoint_url"], create=False)}  # a missing bucket


# --- Qdrant (qdrant-client's local mode) --------------------------------------------------------

def qdrant_target(env):
    """On tmpfs when there is one: local mode commits every point, a disk's fsync is slow."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else str(env.tmp)
    path = f"{base}/qdrant-conformance-{uuid.uuid4().hex[:12]}"
    env.stack.callback(shutil.rmtree, path, ignore_errors=True)
    return {"path": path}


def qdrant_points(ids, seed):
    from qdrant_client import models

    return [models.PointStruct(
        id=point_id,
        vector={"text": [(seed + i * 7 + k) % 11 / 10 - 0.5 for k in range(8)], "image": [i / 3, -1.5, seed + 0.25],
                "keywords": models.SparseVector(indices=[i, i + 100], values=[0.5, seed + 1.0])},
        payload={"title": f"문서 {i} — Zoë", "n": i, "seed": seed, "nested": {"tags": ["a", {"deep": [i, None]}]}})
        for i, point_id in enumerate(ids)]


def with_qdrant(options, work):
    from qdrant_client import QdrantClient

    client = QdrantClient(path=options["path"])  # a fresh client: what is stored, not a session's cache
    try:
        return work(client)
    finally:
        client.close()


def qdrant_fill(options):
    from qdrant_client import models

    def fill(client):
        client.create_collection("docs", vectors_config={
            "text": models.VectorParams(size=8, distance=models.Distance.DOT),
            "image": models.VectorParams(size=3, distance=models.Distance.EUCLID)},
            sparse_vectors_config={"keywords": models.SparseVectorParams()})
        ids = [i if i % 2 else str(uuid.UUID(int=i + 1)) for i in range(30)]
        client.upsert("docs", qdrant_points(ids, seed=0), wait=True)
        client.create_collection("empty", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))

    with_qdrant(options, fill)


def qdrant_snapshot(options):
    """{collection: (params, {id: vectors and payload})}; a missing folder holds no collections."""
    if not os.path.isdir(options["path"]):
        return {}

    def read(client):
        found = {}
        for listed in client.get_collections().collections:
            points, offset = {}, None
            while True:
                page, offset = client.scroll(listed.name, limit=100, offset=offset, with_payload=True,
                                             with_vectors=True)
                points.update({str(p.id): p.model_dump(mode="json", include={"vector", "payload"}) for p in page})
                if offset is None:
                    break
            params = client.get_collection(listed.name).config.params.model_dump(mode="json")
            found[listed.name] = (params, points)
        return found

    return with_qdrant(options, read)


def qdrant_mutate(options):
    from qdrant_client import models

    def mutate(client):
        client.upsert("docs", qdrant_points([1, 999], seed=5), wait=True)  # one changed, one added
        client.delete("docs", models.PointIdsList(points=[3, 5, str(uuid.UUID(int=1))]), wait=True)
        client.delete_collection("empty")

    with_qdrant(options, mutate)


# --- Chroma (a persistent folder) ---------------------------------------------------------------

def with_chroma(options, work):
    import chromadb
    from chromadb.api.client import SharedSystemClient
    from chromadb.config import Settings

    try:
        return work(chromadb.PersistentClient(path=options["path"], settings=Settings(anonymized_telemetry=False)))
    finally:
        SharedSystemClient.clear_system_cache()  # closed: the app copies the folder with writers stopped


def chroma_fill(options):
    def fill(client):
        docs = client.create_collection("docs", metadata={"topic": "문서 ✓", "version": 2},
                                        configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
        docs.add(ids=[f"doc-{i}" for i in range(20)], embeddings=[[i / 4, -1.0, 0.5, i % 3] for i in range(20)],
                 documents=[f"본문 {i}" if i % 5 else None for i in range(20)],
                 metadatas=[{"n": i, "ok": bool(i % 2), "tag": f"t{i % 3}"} for i in range(20)],
                 uris=[f"s3://bucket/{i}.pdf" if i % 4 == 0 else None for i in range(20)])
        notes = client.create_collection("notes", embedding_function=None)
        notes.add(ids=["a", "b"], embeddings=[[0.5, -1.0], [2.0, 0.25]], documents=["first", "second"])

    with_chroma(options, fill)


def chroma_snapshot(options):
    if not os.path.exists(options["path"]):
        return None

    def read(client):
        found = {}
        for listed in client.list_collections():
            collection = client.get_collection(listed.name, embedding_function=None)
            got = collection.get(include=["embeddings", "documents", "metadatas", "uris"])
            items = zip(got["ids"], [list(map(float, e)) for e in got["embeddings"]], got["documents"],
                        got["metadatas"], got["uris"])
            found[listed.name] = (collection.metadata, collection.configuration_json,
                                  sorted(items, key=lambda item: item[0]))
        return found

    return with_chroma(options, read)


def chroma_mutate(options):
    def mutate(client):
        docs = client.get_collection("docs", embedding_function=None)
        docs.delete(ids=["doc-1", "doc-2"])
        docs.update(ids=["doc-3"], embeddings=[[0.0, 1.0, 2.0, 3.0]], documents=["changed"], metadatas=[{"n": -1}])
        docs.add(ids=["added"], embeddings=[[9.0, 9.0, 9.0, 9.0]])
        client.delete_collection("notes")
        client.create_collection("later", embedding_function=None).add(ids=["x"], embeddings=[[1.0]])

    with_chroma(options, mutate)


STORES = {
    "postgres": StoreCase(
        pg_target, lambda o: pg_run(o, PG_SCHEMA), pg_snapshot, pg_mutate, secret=pg_secret,
        absent=lambda o: [WHOLE_STORE]),
    "uploads": StoreCase(uploads_target, lambda o: fill_tree(o["path"]), lambda o: tree(o["path"]),
                         lambda o: mutate_tree(o["path"]), absent=lambda o: [WHOLE_STORE]),
    "sqlite": StoreCase(sqlite_target, sqlite_fill, sqlite_snapshot, sqlite_mutate, absent=lambda o: ["sqlite_app.db"]),
    "redis": StoreCase(
        redis_target, redis_fill, redis_snapshot, redis_mutate, secret=redis_secret,
        no_absent="a Redis source is a server whose databases always exist (empty): a missing server is a "
                  "connection error, not an empty store"),
    "objects": StoreCase(objects_target, objects_fill, objects_snapshot, objects_mutate, secret=objects_secret,
                         absent=lambda o: sorted([o["buckets"], "disk"])),
    # .bak files are the config restore's documented keepsakes (replaced and pruned files), not config.
    "config": StoreCase(config_target, config_fill, lambda o: tree(o["base_dir"], skip=is_bak), config_mutate,
                        absent=lambda o: [".env", "conf.d"], restore_options={"mode": "apply", "prune": True}),
    "qdrant": StoreCase(
        qdrant_target, qdrant_fill, qdrant_snapshot, qdrant_mutate, absent=lambda o: [WHOLE_STORE],
        no_secret="local mode (QDRANT_PATH) has no API key; api_key needs a Qdrant server "
                  "(tests/components/test_qdrant_server.py, QDRANT_TEST_URL)"),
    "chroma": StoreCase(lambda env: {"path": str(env.tmp / "chroma")}, chroma_fill, chroma_snapshot, chroma_mutate,
                        absent=lambda o: [WHOLE_STORE]),
}
per_store = pytest.mark.parametrize("store", sorted(STORES))


# --- Helpers ------------------------------------------------------------------------------------

@pytest.fixture
def env(request, tmp_path):
    with ExitStack() as stack:
        yield Env(request, tmp_path, stack)


def configure(sources, store, options):
    sources(**{store: (components.engine_path(components.engines()[store]), options)})


def live_store(env, sources, store):
    """A filled store of this kind, configured as the source ``store``: (case, options)."""
    case = STORES[store]
    options = case.target(env)
    case.fill(options)
    configure(sources, store, options)
    return case, options


def completed(run):
    assert run.status == RunStatus.COMPLETED, run.error
    return run


def spool_leftovers(settings):
    spool = Path(settings.BACKUP_SPOOL_DIR)
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


# --- The suite ----------------------------------------------------------------------------------

def test_every_store_has_a_conformance_case():
    engines = components.engines()
    assert sorted(STORES) == sorted(engines), "every store module needs a StoreCase in STORES"
    for store, case in STORES.items():
        assert (case.absent is None) == bool(case.no_absent), f"{store}: a missing target, or why there is none"
        if engines[store].secret_options:
            assert (case.secret is None) == bool(case.no_secret), f"{store}: a secret case, or why there is none"


@per_store
@pytest.mark.parametrize("encryption", ["off", "age"])
def test_round_trip_is_exact(store, encryption, env, sources, settings, request):
    if encryption == "age":
        request.getfixturevalue("age_key")
    case, options = live_store(env, sources, store)
    before = case.snapshot(options)
    backup = completed(backups.create_backup([store]))
    artifacts = backup.manifest["artifacts"]
    assert artifacts and {a["encryption"] for a in artifacts.values()} == {None if encryption == "off" else "age"}

    case.mutate(options)
    assert case.snapshot(options) != before
    restore = restores.start_restore(backup.backup_id, [store], confirm=True,
                                     options={store: case.restore_options} if case.restore_options else None)
    completed(restore)
    assert case.snapshot(options) == before
    assert spool_leftovers(settings) == []
    assert [p.name for p in env.tmp.iterdir() if p.name.startswith(".")] == []  # no staging left beside a store


@per_store
def test_inspect_counts_what_the_manifest_counts(store, env, sources):
    case, options = live_store(env, sources, store)
    backup = completed(backups.create_backup([store]))
    counts = backup.manifest["components"][store]["counts"]
    component = components.get_component(store)
    assert counts and component.inspect() == counts
    case.mutate(options)
    assert component.inspect() != counts  # the counts see the change


@per_store
def test_rehearsal_passes_and_leaves_live_data_alone(store, env, sources, settings):
    case, options = live_store(env, sources, store)
    backup = completed(backups.create_backup([store]))
    before = case.snapshot(options)
    check = completed(verification.verify(backup.backup_id, deep=True))
    result = check.results[store]
    assert result["ok"] and not result.get("skipped"), result
    assert result["counts"] == backup.manifest["components"][store]["counts"]
    assert case.snapshot(options) == before
    assert spool_leftovers(settings) == []


@per_store
def test_safety_backup_of_a_missing_store_restores_absent(store, env, sources):
    case = STORES[store]
    if case.absent is None:
        pytest.skip(case.no_absent)
    options = case.target(env)
    configure(sources, store, options)
    missing = case.snapshot(options)
    assert backups.create_backup([store]).status == RunStatus.FAILED  # only a safety backup may find it missing
    safety = completed(backups.create_backup([store], kind=Backup.Kind.SAFETY))
    assert sorted(safety.manifest["components"][store]["absent"]) == sorted(case.absent(options))

    case.fill(options)  # the store appears, as a failed restore would have left it
    assert case.snapshot(options) != missing
    component = components.get_component(store)
    reader = backups.open_reader(safety)
    lines = []
    component.restore(reader, reader.artifacts_of(store), component.rollback_options(), lines.append)
    assert case.snapshot(options) == missing, lines


@per_store
def test_no_secret_in_manifest_log_or_error(store, env, sources, backup_storage_dir):
    case = STORES[store]
    engine = components.engines()[store]
    if not engine.secret_options:
        pytest.skip(f"{engine.__name__} has no secret options")
    if case.secret is None:
        pytest.skip(case.no_secret)
    _case, options = live_store(env, sources, store)
    good, bad = case.secret(options)
    for given, outcome in ((good, RunStatus.COMPLETED), (bad, RunStatus.FAILED)):
        configure(sources, store, given)
        config = components.get_component(store).config
        assert any(SECRET in str(config[key]) for key in engine.secret_options)  # the secret is really in use
        backup = backups.create_backup([store])
        assert backup.status == outcome, backup.error
        assert backup.error or outcome == RunStatus.COMPLETED
        for text in (json.dumps(backup.manifest), backup.log, backup.error):
            assert SECRET not in text
    stored = [p for p in backup_storage_dir.rglob("*") if p.is_file()]
    assert any(p.name == "metadata.json" for p in stored)
    assert [p for p in stored if SECRET.encode() in p.read_bytes()] == []
