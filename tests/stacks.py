"""The data stacks the tests back up, in one place: builders that fill real stores with known data
and return their source options (``{source name: (ENGINE, OPTIONS)}``, what the ``sources``
fixture takes), and ``ENGINES``, every store's ENGINE path read from the registry instead of typed.
The fixtures that call the builders are in the conftest.py files (tests/conftest.py for those used
in several folders). Tests count and name what their builder made: change the data here and the
counts there change with it."""

import os
import sqlite3
from contextlib import closing

import psycopg
from django.utils.module_loading import import_string

from backups_app import components

ENGINES = {name: components.engine_path(cls) for name, cls in components.engines().items()}

# The PostgreSQL server the tests use (each test in fresh databases: conftest's make_pg_database).
PG = {"host": os.environ.get("TEST_PG_HOST", "127.0.0.1"), "port": int(os.environ.get("TEST_PG_PORT", "5432")),
      "user": os.environ.get("TEST_PG_USER", "postgres")}


def pg_options(dbname):
    return {**PG, "dbname": dbname}


def pg_connect(dbname):
    return psycopg.connect(dbname=dbname, autocommit=True, **PG)


def environment(options):
    """The environment variables that configure the sources ``options`` the way backupsite/sources.py
    reads them (each store's ``environment`` map: UPLOADS_DIR, SQLITE_PATHS, POSTGRES_*...), for
    tests that run manage.py, a worker or a script in a subprocess."""
    variables = {}
    for engine, opts in options.values():
        names = import_string(engine).environment
        for key, value in opts.items():
            variables[names[key]] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return variables


# --- One store each ------------------------------------------------------------------------------

def uploads_source(folder, files):
    """An uploads folder holding ``files`` ({relative path: text or bytes})."""
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    folder.mkdir(parents=True, exist_ok=True)
    return ENGINES["uploads"], {"path": str(folder)}


def sqlite_source(path, table, rows):
    """A SQLite file whose ``table`` (id, body) holds one row per value of ``rows``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany(f"INSERT INTO {table} (body) VALUES (?)", [(row,) for row in rows])
    return ENGINES["sqlite"], {"paths": [str(path)]}


def postgres_source(dbname, sql):
    """Database ``dbname`` (already created) filled by ``sql``."""
    with pg_connect(dbname) as conn:
        conn.execute(sql)
    return ENGINES["postgres"], pg_options(dbname)


# --- Stacks --------------------------------------------------------------------------------------

DEMO_FILES = {f"docs/file{n}.txt": b"x" * (100 + n) for n in range(5)}  # 5 files, 510 bytes
DEMO_NOTES = [f"note {n}" for n in range(7)]


def files_stack(root, files=DEMO_FILES, table="notes", rows=DEMO_NOTES):
    """``uploads`` (root/uploads holding ``files``) and ``sqlite`` (root/app.sqlite3, ``rows`` in
    ``table``). By default the demo data: docs/file0..4.txt and 7 notes."""
    return {"uploads": uploads_source(root / "uploads", files),
            "sqlite": sqlite_source(root / "app.sqlite3", table, rows)}


def pg_stack(root, dbname):
    """``postgres`` (documents: 150 rows), ``sqlite`` (root/app.sqlite3, chunks: 40 rows) and
    ``uploads`` (root/uploads: a.txt "alpha\\n", sub/b.bin of 16 KiB)."""
    return {
        "postgres": postgres_source(dbname, "CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL);"
                                            "INSERT INTO documents (title) SELECT 'doc ' || g "
                                            "FROM generate_series(1, 150) g"),
        "sqlite": sqlite_source(root / "app.sqlite3", "chunks", [f"chunk {i}" for i in range(40)]),
        "uploads": uploads_source(root / "uploads", {"a.txt": "alpha\n", "sub/b.bin": bytes(range(256)) * 64}),
    }


def full_stack(root, dbname):
    """``postgres`` (docs: 250 rows, rag.chunks: 1000) and the demo ``files_stack``."""
    return {
        "postgres": postgres_source(dbname, """
            CREATE TABLE docs (id serial PRIMARY KEY, title text);
            INSERT INTO docs (title) SELECT 'doc ' || g FROM generate_series(1, 250) g;
            CREATE SCHEMA rag;
            CREATE TABLE rag.chunks (id int, doc int);
            INSERT INTO rag.chunks SELECT g, g % 250 FROM generate_series(1, 1000) g;
        """),
        **files_stack(root),
    }


def whole_stack(root, dbname, redis_url, qdrant_path, s3_endpoint, bucket):
    """Every store at once, with the data its own tests use: PostgreSQL (docs: 300 rows of jsonb and
    bytea), uploads (non-ASCII names, an empty file), SQLite (test_sqlite's), Redis (test_redis'),
    Qdrant (300 points), Chroma, a bucket of objects (40 and the unusual keys) and a config file.
    Returns (options, state, damage): ``state()`` reads every store back exactly, ``damage()``
    changes or deletes something in each."""
    # The stores' own test data and readers, imported here and not with this module: the conftest
    # files import it, and chromadb and the store tests load slowly.
    import boto3

    from tests.components import test_chroma as chroma_data
    from tests.components import test_config as config_data
    from tests.components import test_objects as objects_data
    from tests.components import test_qdrant as qdrant_data
    from tests.components import test_redis as redis_data
    from tests.components.test_sqlite import dump_sqlite, make_sqlite
    from tests.components.test_uploads import tree

    with pg_connect(dbname) as conn:
        conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body jsonb, blob bytea)")
        conn.execute("INSERT INTO docs (body, blob) SELECT jsonb_build_object('n', g, 't', '한글'), "
                     "decode(md5(g::text), 'hex') FROM generate_series(1, 300) g")
    uploads = root / "uploads"
    (uploads / "nested" / "폴더").mkdir(parents=True)
    (uploads / "nested" / "폴더" / "a.txt").write_text("alpha")
    (uploads / "empty.bin").write_bytes(b"")
    app_db = root / "app.sqlite3"
    make_sqlite(app_db)
    redis_data.fill(redis_url)
    qdrant_data.fill(qdrant_path, 300)
    chroma_dir = root / "chroma"
    chroma_data.fill(chroma_data.persistent(chroma_dir))
    chroma_data.release()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")
    objects_data.fill(s3, bucket, many=40)
    app_dir = root / "app"
    app_dir.mkdir()
    (app_dir / ".env").write_text(config_data.ENV)
    options = {
        "postgres": (ENGINES["postgres"], pg_options(dbname)),
        "uploads": (ENGINES["uploads"], {"path": str(uploads)}),
        "sqlite": (ENGINES["sqlite"], {"paths": str(app_db)}),
        "redis": (ENGINES["redis"], {"url": redis_url}),
        "qdrant": (ENGINES["qdrant"], {"path": qdrant_path}),
        "chroma": (ENGINES["chroma"], {"path": str(chroma_dir)}),
        "objects": (ENGINES["objects"], {**objects_data.s3_options(s3_endpoint, bucket),
                                         "access_key_id": "testing-key", "secret_access_key": "testing-secret"}),
        "config": (ENGINES["config"], {"paths": str(app_dir / ".env")}),
    }

    def state():
        with pg_connect(dbname) as conn:
            rows = conn.execute("SELECT * FROM docs ORDER BY id").fetchall()
        chroma = chroma_data.dump(chroma_data.persistent(chroma_dir))
        chroma_data.release()
        return {"postgres": rows, "uploads": tree(uploads), "sqlite": dump_sqlite(app_db),
                "redis": redis_data.snapshot(redis_url), "qdrant": qdrant_data.read_all(qdrant_path),
                "chroma": chroma, "objects": objects_data.snapshot(s3, bucket),
                "config": (app_dir / ".env").read_text()}

    def damage():
        with pg_connect(dbname) as conn:
            conn.execute("DELETE FROM docs WHERE id % 2 = 0")
        (uploads / "nested" / "폴더" / "a.txt").write_text("changed")
        with redis_data.client(redis_url) as c:
            c.flushall()
        s3.delete_object(Bucket=bucket, Key="pdf/manual.pdf")
        (app_dir / ".env").write_text("DEBUG=true\n")
        app_db.unlink()

    return options, state, damage


class ScriptStack:
    """What scripts/backup/*.sh back up in their tests: root/data/docs.sqlite3 (documents and chunks
    joined by a foreign key, non-ASCII titles), root/uploads (non-ASCII names, a 300 kB random file,
    an empty file) and, with ``pg_db``, a PostgreSQL database (authors, notes with jsonb and bytea).
    ``options`` are its sources (``environment(options)`` configures the scripts); ``snapshot()``
    reads it all back exactly and ``mutate()`` changes, deletes and adds some of each."""

    def __init__(self, root, pg_db=None):
        self.root = root
        self.sqlite = root / "data" / "docs.sqlite3"
        self.uploads = root / "uploads"
        self.pg_db = pg_db
        self.options = {"uploads": (ENGINES["uploads"], {"path": str(self.uploads)}),
                        "sqlite": (ENGINES["sqlite"], {"paths": [str(self.sqlite)]})}
        if pg_db:
            self.options["postgres"] = (ENGINES["postgres"], pg_options(pg_db))
        self._create()

    def _create(self):
        self.sqlite.parent.mkdir()
        with closing(sqlite3.connect(self.sqlite)) as conn, conn:
            conn.executescript("""
                PRAGMA foreign_keys = ON;
                CREATE TABLE documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
                CREATE TABLE chunks (id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL REFERENCES documents(id),
                                     body TEXT);
            """)
            conn.executemany("INSERT INTO documents VALUES (?, ?)", [(i, f"문서 {i} ✓") for i in range(1, 21)])
            conn.executemany("INSERT INTO chunks (document_id, body) VALUES (?, ?)",
                             [(1 + i % 20, f"chunk {i}") for i in range(200)])
        (self.uploads / "docs" / "보고서").mkdir(parents=True)
        (self.uploads / "docs" / "보고서" / "요약 ✓.txt").write_text("요약\n" * 100, encoding="utf-8")
        (self.uploads / "docs" / "big.bin").write_bytes(os.urandom(300_000))
        (self.uploads / "empty.txt").write_bytes(b"")
        if self.pg_db:
            with pg_connect(self.pg_db) as conn:
                conn.execute("""
                    CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL);
                    CREATE TABLE notes (id bigserial PRIMARY KEY, author_id int REFERENCES authors(id),
                                        meta jsonb, blob bytea);
                    INSERT INTO authors (name) VALUES ('Ada'), ('김민지');
                    INSERT INTO notes (author_id, meta, blob)
                        SELECT 1 + i % 2, jsonb_build_object('i', i), decode(md5(i::text), 'hex')
                        FROM generate_series(1, 300) i;
                """)

    def snapshot(self):
        with closing(sqlite3.connect(self.sqlite)) as conn:
            data = {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("documents", "chunks")}
        data["uploads"] = {str(p.relative_to(self.uploads)): p.read_bytes() if p.is_file() else None
                           for p in sorted(self.uploads.rglob("*"))}
        if self.pg_db:
            with pg_connect(self.pg_db) as conn:
                for table in ("authors", "notes"):
                    exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
                    data[table] = exists and conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        return data

    def mutate(self):
        with closing(sqlite3.connect(self.sqlite)) as conn, conn:
            conn.execute("DELETE FROM chunks WHERE id % 3 = 0")
            conn.execute("UPDATE documents SET title = 'changed' WHERE id < 5")
            conn.execute("INSERT INTO documents (title) VALUES ('new')")
        (self.uploads / "docs" / "big.bin").write_bytes(b"overwritten")
        (self.uploads / "empty.txt").unlink()
        (self.uploads / "added.txt").write_text("added")
        if self.pg_db:
            with pg_connect(self.pg_db) as conn:
                conn.execute("DELETE FROM notes WHERE id % 2 = 0; DROP TABLE authors CASCADE")
