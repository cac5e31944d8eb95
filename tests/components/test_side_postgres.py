"""PostgreSQL restores into another database (postgres.database, postgres.replace) and of some
tables only (postgres.tables), on the real server; refusals of nonsense and of the live database
in disguise."""

import pytest

from backups_app.errors import InvalidOption, Unchanged
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from tests.components.test_postgres import SCHEMA
from tests.stacks import ENGINES, pg_connect, pg_options


def rows(dbname, query):
    with pg_connect(dbname) as conn:
        return conn.execute(query).fetchall()


def exists(dbname):
    return bool(rows("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'"))


@pytest.fixture
def scratch_name(make_pg_database):
    """A database name nobody uses yet (dropped afterwards if a test made it)."""
    name = make_pg_database()
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE "{name}"')
    return name


@pytest.fixture
def pg_backup(sources, pg_database):
    """The test_postgres schema backed up, then changed live: 10 documents (and their chunks)
    deleted, an author renamed. Returns (live database, backup)."""
    with pg_connect(pg_database) as conn:
        conn.execute(SCHEMA)
    sources(postgres=(ENGINES["postgres"], pg_options(pg_database)))
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    with pg_connect(pg_database) as conn:
        conn.execute("DELETE FROM documents WHERE id <= 10")
        conn.execute("UPDATE authors SET name = 'renamed' WHERE id = 1")
    return pg_database, backup


def restore(backup, **options):
    return restores.start_restore(backup.backup_id, ["postgres"], {"postgres": options}, confirm=True)


def no_safety_backup_was_taken(restore_run):
    assert restore_run.safety_backup is None
    assert not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    assert "no safety backup needed" in restore_run.log


@pytest.mark.django_db
def test_whole_database_into_a_new_one_leaves_the_live_one_alone(pg_backup, scratch_name):
    live, backup = pg_backup
    plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"database": scratch_name}})
    assert plan["ok"], plan["problems"]
    target = plan["targets"]["postgres"]
    assert target["live"] is False and target["safety_backup"] is False
    assert f"into database {scratch_name}" in target["target"] and f"live database {live} is not touched" in \
        target["target"]
    assert any(f"creates database {scratch_name}" in n for n in plan["preflight"]["postgres"]["notes"])

    run = restore(backup, database=scratch_name)
    assert run.status == RunStatus.COMPLETED, run.error
    no_safety_backup_was_taken(run)
    assert rows(scratch_name, "SELECT count(*) FROM documents") == [(500,)]
    assert rows(scratch_name, "SELECT count(*) FROM rag.chunks") == [(1500,)]
    assert rows(scratch_name, "SELECT name FROM authors WHERE id = 1") == [("Ada",)]
    assert rows(live, "SELECT count(*) FROM documents") == [(490,)]  # untouched
    assert rows(live, "SELECT name FROM authors WHERE id = 1") == [("renamed",)]


@pytest.mark.django_db
def test_an_existing_database_that_holds_data_is_refused_unless_replace(pg_backup, make_pg_database):
    _live, backup = pg_backup
    other = make_pg_database()
    with pg_connect(other) as conn:
        conn.execute("CREATE TABLE keep (x int); INSERT INTO keep VALUES (1)")
    plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"database": other}})
    assert not plan["ok"]
    assert any(f"database {other} exists and is not empty" in p and "postgres.replace=true" in p
               for p in plan["refusals"])
    refused = restore(backup, database=other)
    assert refused.status == RunStatus.FAILED and "Traceback" not in refused.error
    assert rows(other, "SELECT * FROM keep") == [(1,)]

    replaced = restore(backup, database=other, replace="true")
    assert replaced.status == RunStatus.COMPLETED, replaced.error
    assert rows(other, "SELECT count(*) FROM documents") == [(500,)]
    assert rows(other, "SELECT to_regclass('keep')") == [(None,)]


@pytest.mark.django_db
def test_an_empty_existing_database_is_filled_without_replace(pg_backup, make_pg_database):
    _live, backup = pg_backup
    empty = make_pg_database()
    run = restore(backup, database=empty)
    assert run.status == RunStatus.COMPLETED, run.error
    assert rows(empty, "SELECT count(*) FROM documents") == [(500,)]


@pytest.mark.django_db
def test_tables_into_the_live_database_replace_only_those(pg_backup):
    live, backup = pg_backup
    with pg_connect(live) as conn:
        conn.execute("DELETE FROM rag.chunks")  # the FK from chunks into documents stays in place
    plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"tables": "documents"}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["postgres"]["live"] is True and plan["targets"]["postgres"]["safety_backup"] is True
    assert "only tables documents of the live database" in plan["targets"]["postgres"]["target"]

    run = restore(backup, tables="documents")
    assert run.status == RunStatus.COMPLETED, run.error
    assert rows(live, "SELECT count(*), min(id) FROM documents") == [(500, 1)]
    assert rows(live, "SELECT name FROM authors WHERE id = 1") == [("renamed",)]  # not selected: kept
    assert rows(live, "SELECT count(*) FROM rag.chunks") == [(0,)]
    # Its sequence, primary key and foreign keys (in and out) came back with it.
    assert rows(live, "SELECT last_value FROM documents_id_seq") == [(500,)]
    constraints = {r[0] for r in rows(live, "SELECT conname FROM pg_constraint WHERE conrelid = 'documents'::regclass "
                                            "OR confrelid = 'documents'::regclass")}
    assert {"documents_pkey", "documents_author_id_fkey", "chunks_doc_id_fkey"} <= constraints
    with pg_connect(live) as conn:
        conn.execute("INSERT INTO documents (title) VALUES ('next')")  # the default and the sequence work
    assert rows(live, "SELECT max(id) FROM documents") == [(501,)]


@pytest.mark.django_db
def test_tables_into_a_new_database_bring_what_they_need_and_name_what_is_left_out(pg_backup, scratch_name):
    live, backup = pg_backup
    options = {"database": scratch_name, "tables": "documents,rag.chunks"}
    plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": options})
    assert plan["ok"], plan["problems"]
    notes = plan["preflight"]["postgres"]["notes"]
    assert any("left out: FK CONSTRAINT public documents documents_author_id_fkey" in n and "authors" in n
               for n in notes), notes

    run = restore(backup, **options)
    assert run.status == RunStatus.COMPLETED, run.error
    no_safety_backup_was_taken(run)
    tables = rows(scratch_name, "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN "
                                "('pg_catalog', 'information_schema') ORDER BY 1")
    assert tables == [("public.documents",), ("rag.chunks",)]
    assert rows(scratch_name, "SELECT count(*) FROM documents") == [(500,)]
    assert rows(scratch_name, "SELECT count(*) FROM rag.chunks") == [(1500,)]
    assert rows(scratch_name, "SELECT count(*) FROM pg_constraint WHERE conname = 'chunks_doc_id_fkey'") == [(1,)]
    assert rows(live, "SELECT count(*) FROM documents") == [(490,)]


@pytest.mark.django_db
def test_a_table_not_in_the_backup_is_refused_in_the_plan(pg_backup):
    _live, backup = pg_backup
    plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"tables": "documents,nope"}})
    assert not plan["ok"]
    assert any("table(s) nope are not in postgres.dump" in p for p in plan["refusals"])


@pytest.mark.django_db
def test_a_failing_table_restore_changes_nothing(pg_backup):
    live, backup = pg_backup
    with pg_connect(live) as conn:  # a live view over documents that the backup does not have
        conn.execute("CREATE VIEW recent AS SELECT id FROM documents WHERE id > 400")
    run = restore(backup, tables="documents")
    assert run.status == RunStatus.FAILED
    assert "one transaction" in run.error and "Nothing was changed" in run.error
    assert rows(live, "SELECT count(*) FROM documents") == [(490,)]


@pytest.mark.django_db
@pytest.mark.parametrize("options, message", [
    ({"replace": "true"}, "postgres.replace=true applies to a restore into another database"),
    ({"database": "LIVE"}, "is the live database"),
    ({"database": "postgres"}, "maintenance database or a template"),
    ({"database": "template1"}, "maintenance database or a template"),
    ({"database": "x" * 64}, "at most 63 bytes"),
    ({"database": "scratch", "mode": "clean"}, "postgres.mode chooses how the live database is replaced"),
    ({"tables": "documents", "mode": "swap"}, "leave out postgres.mode=swap"),
    ({"database": "LIVE__restoring_1"}, "the restore's own temporary databases"),
])
def test_nonsense_and_the_live_database_in_disguise_are_refused(pg_backup, options, message):
    live, backup = pg_backup
    options = {k: v.replace("LIVE", live) for k, v in options.items()}
    with pytest.raises(InvalidOption, match=message):
        restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": options}, verify=False)
    with pytest.raises(InvalidOption, match=message):
        restore(backup, **options)


@pytest.mark.django_db
def test_another_sources_live_database_is_refused(sources, pg_database, make_pg_database):
    other = make_pg_database()
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE t (x int)")
    # The same server under another host name is the same server.
    sources(postgres=(ENGINES["postgres"], pg_options(pg_database)),
            pg2=(ENGINES["postgres"], {**pg_options(other), "host": "localhost"}))
    backup = backups.create_backup(["postgres"])
    with pytest.raises(InvalidOption, match="is the live database of source 'pg2'"):
        restore(backup, database=other)


@pytest.mark.django_db
def test_a_backup_without_the_database_never_drops_the_live_one(sources, scratch_name, make_pg_database):
    live = make_pg_database()
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE "{live}"')  # not there when the safety backup runs
    sources(postgres=(ENGINES["postgres"], pg_options(live)))
    safety = backups.create_backup(["postgres"], kind=Backup.Kind.SAFETY)
    assert safety.status == RunStatus.COMPLETED and safety.manifest["components"]["postgres"]["absent"]
    with pg_connect("postgres") as conn:
        conn.execute(f'CREATE DATABASE "{live}"')
    with pg_connect(live) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    plan = restores.plan_restore(safety.backup_id, ["postgres"], {"postgres": {"database": scratch_name}})
    assert any("this backup holds no database" in p for p in plan["refusals"])
    from backups_app import components

    component, reader = components.get_component("postgres"), backups.open_reader(safety)
    with pytest.raises(Unchanged, match="this backup holds no database"):
        component.restore(reader, reader.artifacts_of("postgres"),
                          component.parse_restore_options({"database": scratch_name}), print)
    assert rows(live, "SELECT count(*) FROM kept") == [(0,)] and not exists(scratch_name)


@pytest.mark.django_db
def test_probes_after_a_side_restore_check_only_the_tables_restored(sources, pg_database, scratch_name):
    from tests.test_probes import pg_vectors

    pg_vectors(pg_database)  # chunks.embedding: probed at backup time
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE documents (id int PRIMARY KEY); INSERT INTO documents VALUES (1), (2)")
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "vector_columns": "chunks.embedding"}))
    backup = backups.create_backup(["postgres"])
    assert backup.manifest["components"]["postgres"]["probes"]["chunks.embedding"]
    only_documents = restore(backup, database=scratch_name, tables="documents")
    assert only_documents.status == RunStatus.COMPLETED, only_documents.error
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE "{scratch_name}"')
    both = restore(backup, database=scratch_name, tables="documents,chunks")
    assert both.status == RunStatus.COMPLETED, both.error
    assert "chunks.embedding: probe recall@10 1.00" in both.log  # the scratch copy answers the probes


@pytest.mark.django_db
def test_the_plan_names_what_an_interrupted_side_restore_left(pg_backup, scratch_name):
    _live, backup = pg_backup
    left = f"{scratch_name}__restoring_deadbeef"
    with pg_connect("postgres") as conn:
        conn.execute(f'CREATE DATABASE "{left}"')
    try:
        plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"database": scratch_name}},
                                     verify=False)
        assert any(f"left by an interrupted restore into {scratch_name}" in n and left in n
                   for n in plan["preflight"]["postgres"]["notes"])
    finally:
        with pg_connect("postgres") as conn:
            conn.execute(f'DROP DATABASE "{left}"')
