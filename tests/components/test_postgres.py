import subprocess

import pytest

from backups_app import components
from backups_app.components import postgres
from backups_app.components.postgres import LARGE_OBJECTS, split_setting_list
from backups_app.errors import Unchanged
from backups_app.models import RunStatus
from backups_app.services import backups, restores, verification
from tests.stacks import ENGINES, pg_connect, pg_options

SCHEMA = """
CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE documents (
    id bigserial PRIMARY KEY, author_id int REFERENCES authors(id), title text, meta jsonb,
    blob bytea, created timestamptz DEFAULT now());
CREATE SEQUENCE ticket_seq START 100;
CREATE SCHEMA rag;
CREATE TABLE rag.chunks (doc_id bigint REFERENCES documents(id) ON DELETE CASCADE, n int, body text,
                         PRIMARY KEY (doc_id, n));
CREATE VIEW document_titles AS SELECT d.id, d.title, a.name FROM documents d JOIN authors a ON a.id = d.author_id;
INSERT INTO authors (name) VALUES ('Ada'), ('김민지'), ('Zoë');
INSERT INTO documents (author_id, title, meta, blob)
    SELECT 1 + i % 3, 'doc ' || i || ' ✓ 한글', jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i)),
           decode(md5(i::text), 'hex') || '\\x00ff'::bytea
    FROM generate_series(1, 500) i;
INSERT INTO rag.chunks SELECT id, n, repeat('텍스트 ', n) FROM documents, generate_series(1, 3) n;
SELECT nextval('ticket_seq'), nextval('ticket_seq');
"""

TABLES = ["authors", "documents", "rag.chunks", "document_titles"]


def snapshot(dbname):
    with pg_connect(dbname) as conn:
        data = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
        data["ticket_seq"] = conn.execute("SELECT last_value FROM ticket_seq").fetchone()
        data["authors_id_seq"] = conn.execute("SELECT last_value FROM authors_id_seq").fetchone()
    return data


@pytest.fixture
def pg_source(sources, pg_database):
    with pg_connect(pg_database) as conn:
        conn.execute(SCHEMA)
    sources(postgres=(ENGINES["postgres"], pg_options(pg_database)))
    return pg_database


@pytest.mark.django_db
def test_round_trip_restores_every_table_exactly(pg_source, backup_storage_dir):
    before = snapshot(pg_source)
    backup = backups.create_backup(["postgres"], description="pg")
    assert backup.status == RunStatus.COMPLETED, backup.error
    counts = backup.manifest["components"]["postgres"]["counts"]
    assert counts == {"authors": 3, "documents": 500, "rag.chunks": 1500}
    assert backup.manifest["components"]["postgres"]["row_counts"] == (
        "exact, count(*) in the dump's snapshot, no parallel workers or JIT")

    # The dump is a standard custom-format archive.
    dump = backup_storage_dir / backup.backup_id / "postgres.dump"
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public documents" in listing.stdout
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dump.parent, check=True, capture_output=True)

    with pg_connect(pg_source) as conn:
        conn.execute("DELETE FROM rag.chunks WHERE n = 2")
        conn.execute("UPDATE documents SET meta = '{}' WHERE id < 10")
        conn.execute("DROP VIEW document_titles")
        conn.execute("SELECT nextval('ticket_seq')")

    restore = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert snapshot(pg_source) == before
    assert restore.safety_backup is None or not backups.Backup.objects.filter(pk=restore.safety_backup_id).exists()


@pytest.fixture
def app_roles(pg_source):
    """Roles of the application's own on the shared server: (owner, reader, restorer), removed at
    the end with whatever they own."""
    names = [f"{pg_source}_{kind}" for kind in ("owner", "reader", "restorer")]
    yield names
    with pg_connect(pg_source) as conn:
        for name in names:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
                conn.execute(f'REASSIGN OWNED BY "{name}" TO postgres; DROP OWNED BY "{name}"; DROP ROLE "{name}"')


def role_facts(dbname, names):
    with pg_connect(dbname) as conn:
        return conn.execute("""
            SELECT rolname, rolcanlogin, rolcreatedb, rolconnlimit,
                   ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                         WHERE m.member = r.oid ORDER BY 1)
            FROM pg_roles r WHERE rolname = ANY(%s) ORDER BY 1""", [names]).fetchall()


def owners_and_grants(dbname, reader):
    with pg_connect(dbname) as conn:
        return conn.execute("SELECT pg_get_userbyid(relowner), has_table_privilege(%s, 'owned', 'SELECT') "
                            "FROM pg_class WHERE relname = 'owned'", [reader]).fetchone()


@pytest.mark.django_db
def test_missing_roles_come_back_from_the_backup_and_existing_ones_are_left_unchanged(pg_source, app_roles,
                                                                                       backup_storage_dir):
    owner, reader, _ = app_roles
    with pg_connect(pg_source) as conn:
        conn.execute(f'CREATE ROLE "{reader}" NOLOGIN; CREATE ROLE "{owner}" LOGIN CREATEDB CONNECTION LIMIT 3 '
                     f'IN ROLE "{reader}"')
        conn.execute(f'CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO "{owner}"; '
                     f'GRANT SELECT ON owned TO "{reader}"')
    roles_before, grants_before = role_facts(pg_source, app_roles), owners_and_grants(pg_source, reader)
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert set(backup.manifest["components"]["postgres"]["roles"]) >= {owner, reader}
    with pg_connect(pg_source) as conn:  # the owner is gone; the reader exists with other attributes
        conn.execute(f'DROP TABLE owned; DROP ROLE "{owner}"; ALTER ROLE "{reader}" CONNECTION LIMIT 9')

    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert plan["ok"], plan["refusals"]
    assert plan["preflight"]["postgres"]["roles_to_create"] == [owner]
    restore = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)

    assert restore.status == RunStatus.COMPLETED, restore.error
    assert f"role {owner} created" in restore.log and f"role {reader} exists; left unchanged" in restore.log
    assert owners_and_grants(pg_source, reader) == grants_before == (owner, True)
    reader_now = [r for r in roles_before if r[0] == reader][0][:3] + (9, [])
    assert role_facts(pg_source, app_roles) == sorted([r for r in roles_before if r[0] == owner] + [reader_now])

    # Stock psql runs the stored script too (the by-hand path in docs/disaster-recovery.md).
    with pg_connect(pg_source) as conn:
        conn.execute(f'REASSIGN OWNED BY "{owner}" TO postgres; DROP OWNED BY "{owner}"; DROP ROLE "{owner}"')
    script = backup_storage_dir / backup.backup_id / "postgres.roles.sql"
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", pg_source,
                    "-f", str(script)], check=True, capture_output=True)
    assert [r[0] for r in role_facts(pg_source, [owner])] == [owner]


@pytest.mark.django_db
def test_a_user_that_cannot_create_roles_is_refused_in_the_plan_with_both_ways_out(sources, pg_source, app_roles):
    owner, _, restorer = app_roles
    with pg_connect(pg_source) as conn:
        conn.execute(f'CREATE ROLE "{owner}"; CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO "{owner}"')
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    with pg_connect(pg_source) as conn:
        conn.execute(f'DROP TABLE owned; DROP ROLE "{owner}"; DELETE FROM rag.chunks; '
                     f'CREATE ROLE "{restorer}" LOGIN CREATEDB NOCREATEROLE IN ROLE pg_read_all_data')
    changed = snapshot(pg_source)
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_source), "user": restorer}))

    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    (refusal,) = [r for r in plan["refusals"] if "may not create roles" in r]
    assert owner in refusal and f"ALTER ROLE {restorer} CREATEROLE" in refusal and "postgres.no_owner=true" in refusal
    restore = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)
    assert restore.status == RunStatus.FAILED and "Restore refused before any change" in restore.error
    assert restore.safety_backup is None and snapshot(pg_source) == changed
    check = verification.verify(backup.backup_id, deep=True)  # the rehearsal stops where the restore does
    assert check.status == RunStatus.FAILED and f"ALTER ROLE {restorer} CREATEROLE" in check.error
    assert "The restore would fail the same way" in check.error

    # Past the plan, the restore itself stops at the roles and changes nothing.
    component = components.get_component("postgres")
    reader = backups.open_reader(backup)
    with pytest.raises(Unchanged, match=f"ALTER ROLE {restorer} CREATEROLE"):
        component.restore(reader, reader.artifacts_of("postgres"), component.parse_restore_options({}), print)
    assert snapshot(pg_source) == changed

    with pg_connect(pg_source) as conn:
        conn.execute(f'ALTER ROLE "{restorer}" CREATEROLE')
    plan = restores.plan_restore(backup.backup_id, ["postgres"])
    assert not [r for r in plan["refusals"] if "roles" in r]
    assert any(f"creates the role(s) the backup needs and this server lacks first, from postgres.roles.sql: {owner}"
               in note for note in plan["preflight"]["postgres"]["notes"])


@pytest.mark.django_db
def test_no_owner_restores_without_the_roles(pg_source, app_roles):
    owner = app_roles[0]
    with pg_connect(pg_source) as conn:
        conn.execute(f'CREATE ROLE "{owner}"; CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO "{owner}"')
    backup = backups.create_backup(["postgres"])
    with pg_connect(pg_source) as conn:
        conn.execute(f'DROP TABLE owned; DROP ROLE "{owner}"; DELETE FROM rag.chunks')
    restore = restores.start_restore(backup.backup_id, ["postgres"], {"postgres": {"no_owner": "true"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert role_facts(pg_source, [owner]) == []
    with pg_connect(pg_source) as conn:
        assert conn.execute("SELECT count(*) FROM rag.chunks").fetchone()[0] == 1500
        assert conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'owned'").fetchone() == (
            "postgres",)


@pytest.mark.django_db
def test_counts_take_partitions_once_skip_extension_tables_and_count_large_objects(sources, pg_database):
    with pg_connect(pg_database) as conn:
        conn.execute("""
            CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
            CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            INSERT INTO events SELECT n, date '2025-06-01' + n FROM generate_series(1, 400) n;
            CREATE EXTENSION citext;
            CREATE TABLE citext_settings (k text);
            INSERT INTO citext_settings VALUES ('made by the extension, not dumped');
            ALTER EXTENSION citext ADD TABLE citext_settings;
            SELECT lo_from_bytea(0, 'one'), lo_from_bytea(0, 'two');
        """)
    sources(postgres=(ENGINES["postgres"], pg_options(pg_database)))
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    expected = {"events": 400, LARGE_OBJECTS: 2}
    assert backup.manifest["components"]["postgres"]["counts"] == expected
    assert components.get_component("postgres").inspect() == expected
    check = verification.verify(backup.backup_id, deep=True)
    assert check.status == RunStatus.COMPLETED, check.error
    assert check.results["postgres"]["counts"] == expected


def test_setting_lists_are_split_like_postgresql_does():
    assert split_setting_list('"$user", public, "odd ""name"""') == ["$user", "public", 'odd "name"']
    assert split_setting_list("") == [] and split_setting_list("a") == ["a"]


@pytest.mark.django_db
def test_password_travels_in_environment_only(sources, pg_database, settings):
    # A wrong password on a trust server still connects; what matters is where it travels.
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "password": "s3cr3t-value"}))
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert "s3cr3t-value" not in backup.log + str(backup.manifest)


@pytest.mark.django_db
def test_unreachable_server_fails_with_readable_error(sources):
    sources(postgres=(ENGINES["postgres"], {"host": "127.0.0.1", "port": 1, "dbname": "nope", "password": "hidden-pw"}))
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.FAILED
    assert "Cannot connect to PostgreSQL postgres@127.0.0.1:1/nope" in backup.error
    assert "hidden-pw" not in backup.error + backup.log


@pytest.mark.django_db
def test_old_pg_dump_is_detected_with_the_fix(sources, pg_database, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = fake_bin / tool
        script.write_text("#!/bin/sh\necho \"pg_dump (PostgreSQL) 9.6.24\"\n")
        script.chmod(0o755)
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "bin_dir": str(fake_bin)}))
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.FAILED
    assert "pg_dump 9 is older than the PostgreSQL" in backup.error
    assert "apt-get install postgresql-client-" in backup.error


@pytest.mark.django_db
def test_the_tools_are_asked_their_version_once_a_minute(sources, pg_database, tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    logging_bin = tmp_path / "bin"
    logging_bin.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True, check=True)
        script = logging_bin / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexec {real.stdout.strip()} "$@"\n')
        script.chmod(0o755)
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "bin_dir": str(logging_bin)}))
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["postgres"]["tool_version"].startswith("pg_dump (PostgreSQL) ")
    assert calls.read_text().splitlines().count("pg_dump --version") == 1
    assert backups.create_backup(["postgres"]).status == RunStatus.COMPLETED
    restore = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    asked = calls.read_text().splitlines()
    assert asked.count("pg_dump --version") == 1 and asked.count("pg_restore --version") == 1, asked
    # A client installed meanwhile (Debian's pg_wrapper runs the newest) is asked again once it is stale.
    monkeypatch.setattr(postgres, "VERSION_TTL_SECONDS", 0)
    assert backups.create_backup(["postgres"]).status == RunStatus.COMPLETED
    assert calls.read_text().splitlines().count("pg_dump --version") == 2


@pytest.mark.django_db
def test_a_restore_drops_the_half_loaded_databases_a_killed_restore_left(pg_source):
    backup = backups.create_backup(["postgres"])
    left, unrelated = f"{pg_source}__restoring_0123abcd", f"{pg_source}__restoring_not_ours"
    with pg_connect("postgres") as conn:
        for name in (left, unrelated):
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        restore = restores.start_restore(backup.backup_id, ["postgres"], confirm=True)
        assert restore.status == RunStatus.COMPLETED, restore.error
        assert f"dropped a half-loaded database an interrupted restore left, {left}" in restore.log
        with pg_connect("postgres") as conn:
            found = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                                [f"{pg_source}__"])}
        assert found == {unrelated}
    finally:
        with pg_connect("postgres") as conn:
            for name in (left, unrelated):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
