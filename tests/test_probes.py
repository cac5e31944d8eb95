"""Retrieval-level proof (backups_app/probes.py) against the real stores: Qdrant's local mode,
Chroma's folder mode and PostgreSQL (a float-array column; pgvector columns: test_pgvector.py).
Each backup's probes are checked against neighbours computed here independently (numpy over the
data the test wrote), then recall@10 after a rehearsal and a restore, and damaged restores: a
set whose artifact holds other vectors than its probes saw (forged from a later backup of altered
data, counts unchanged) fails the rehearsal and is rolled back after a restore, naming the
collection and the probe."""

import hashlib
import io
import json
import re
import sys

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from qdrant_client import QdrantClient, models

from backups_app import checks, components, probes
from backups_app.errors import ComponentError
from backups_app.models import RunStatus, Trigger, Verification
from backups_app.services import backups, restores, verification
from tests.api.conftest import staff_user, token_client
from tests.components.test_chroma import chroma_server  # noqa: F401, F811 (a fixture)
from tests.components.test_redis import client as redis_client
from tests.conftest import forge_artifact
from tests.stacks import ENGINES, pg_connect, pg_options, sqlite_source, uploads_source

pytestmark = pytest.mark.django_db


def sha(item_id):
    return hashlib.sha256(str(item_id).encode()).hexdigest()


def exact_top10(vectors, query_ids, metric):
    """{query id: [the 10 nearest ids]} by brute force over ``vectors`` {id: vector}."""
    ids = list(vectors)
    matrix = np.array([vectors[i] for i in ids], dtype=float)
    found = {}
    for q in query_ids:
        query = np.asarray(vectors[q], dtype=float)
        if metric == "cosine":
            distance = 1 - matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        else:
            distance = ((matrix - query) ** 2).sum(axis=1)
        found[q] = [ids[n] for n in np.lexsort((np.array(ids, dtype=str), distance))[:10]]
    return found


def md5(item_id):
    return hashlib.md5(str(item_id).encode()).hexdigest()  # as PostgreSQL's md5() of the key's text


def assert_recorded(entry, vectors, metric, vector="", k=5, key=sha):
    """The probes of one collection (and vector name): the k ids with the smallest ``key`` (SHA-256;
    PostgreSQL: md5), each with its exact top 10, itself first."""
    chosen = sorted(vectors, key=key)[:k]
    recorded = [p for p in entry["probes"] if p["vector"] == vector]
    assert [str(p["id"]) for p in recorded] == chosen
    expected = exact_top10(vectors, chosen, metric)
    for probe in recorded:
        assert [str(n) for n, _ in probe["neighbours"]] == expected[str(probe["id"])]
        assert np.allclose(probes.decode(probe["query"]), vectors[str(probe["id"])], rtol=1e-6)


def recall_of(result):
    return {collection: r["recall"] for collection, r in result["probes"].items()}


def swap_artifact(storage, damaged, source, name):
    """Give set ``damaged`` the artifact ``name`` of set ``source`` (recorded as its own)."""
    forge_artifact(storage, damaged, name, (storage / source.backup_id / name).read_bytes())


def dashboard_recall(client, source):
    """The probe recall cell of ``source``'s row on the admin index's dashboard."""
    page = client.get("/admin/").content.decode()
    row = re.search(rf'<tr class="source" data-source="{source}">(.*?)</tr>', page, re.S).group(1)
    return re.search(r'<td class="recall">(.*?)</td>', row, re.S).group(1).strip()


# --- Qdrant (local mode) ---------------------------------------------------------------------------

def qdrant_fill(path):
    from tests.components import test_qdrant as qdrant_data

    data = qdrant_data.fill(path, 300)
    return {name: {i: p["vector"][name] for i, p in data.items()} for name in ("text", "image")}


def alter_text_vectors(path):
    """Every point's text vector replaced by another point's (the same counts, other neighbours)."""
    client = QdrantClient(path=path)
    points, _ = client.scroll("docs", limit=1000, with_vectors=True)
    texts = [p.vector["text"] for p in points]
    client.upsert("docs", [models.PointStruct(id=p.id, vector={**p.vector, "text": texts[(n + 1) % len(texts)]},
                                              payload=p.payload) for n, p in enumerate(points)], wait=True)
    client.close()


def test_qdrant_probes_rehearsal_restore_and_a_damaged_set(qdrant_path, sources, backup_storage_dir, admin_client):
    from tests.components import test_qdrant as qdrant_data

    vectors = qdrant_fill(qdrant_path)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    good = backups.create_backup(["qdrant"])
    assert good.status == RunStatus.COMPLETED, good.error
    entry = good.manifest["components"]["qdrant"]["probes"]["docs"]
    assert len(entry["probes"]) == 10  # 5 points x the two dense vectors (the sparse one is not probed)
    assert_recorded(entry, vectors["text"], "cosine", "text")
    assert_recorded(entry, vectors["image"], "euclid", "image")

    # Rehearsal: recall 1.0, in the JSON of verifybackup --deep --json, the API and the admin page.
    out = io.StringIO()
    call_command("verifybackup", good.backup_id, "--deep", "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown["ok"] and shown["kind"] == "deep"
    assert shown["results"]["qdrant"]["recall"] == {"docs": 1.0}
    assert shown["results"]["qdrant"]["counts"] == {"docs": 300} and shown["results"]["qdrant"]["seconds"] > 0
    api = token_client(staff_user("probe-api", superuser=True))
    listed = api.get(f"/api/system/backup/{good.backup_id}/verifications").json()
    assert listed[0]["results"]["qdrant"]["recall"] == {"docs": 1.0}
    rehearsed = api.post(f"/api/system/backup/{good.backup_id}/rehearse?wait=true")
    assert rehearsed.status_code == 200 and rehearsed.json()["results"]["qdrant"]["recall"] == {"docs": 1.0}
    page = admin_client.get(f"/admin/backups_app/verification/{Verification.objects.first().pk}/change/")
    assert "probe recall@10 docs 1.00" in page.content.decode() and "docs 300" in page.content.decode()
    assert dashboard_recall(admin_client, "qdrant") == "docs 1.00"

    # The live text vectors altered: the live store fails the probes, naming collection and probe.
    alter_text_vectors(qdrant_path)
    component = components.get_component("qdrant")
    live = probes.check_probes(component, good.manifest["components"]["qdrant"])
    assert not live["docs"]["ok"] and live["docs"]["recall"] < 1
    assert all("vector text" in failure for failure in live["docs"]["failed"]) and len(live["docs"]["failed"]) == 5
    altered = backups.create_backup(["qdrant"])

    # A restore of the good set puts the vectors back: recall 1.0, recorded as the restore's check.
    restore = restores.start_restore(good.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    assert check.status == RunStatus.COMPLETED and recall_of(check.results["qdrant"]) == {"docs": 1.0}
    assert check.results["qdrant"]["restore_id"] == restore.restore_id
    assert verification.of_restore(restore) == check
    page = admin_client.get(f"/admin/backups_app/restore/{restore.pk}/change/").content.decode()
    assert "Retrieval probes" in page and "qdrant: probe recall@10 docs 1.00" in page
    before = qdrant_data.read_all(qdrant_path)
    assert {i: p["vector"]["image"] for i, p in before.items()} == vectors["image"]

    # The good set's artifact swapped for the altered one (counts equal): the rehearsal fails...
    swap_artifact(backup_storage_dir, good, altered, "qdrant_docs.jsonl.zst")
    rehearsal = verification.verify(good.backup_id, deep=True)
    assert rehearsal.status == RunStatus.FAILED
    assert "collection docs: probe 6 (point " in rehearsal.error and ", vector text) recall@10" in rehearsal.error
    assert "below BACKUP_PROBE_MIN_RECALL 1" in rehearsal.error and "vector image" not in rehearsal.error
    assert rehearsal.results["qdrant"]["counts"] == {"docs": 300}
    out = io.StringIO()
    with pytest.raises(CommandError, match="failed verification: qdrant: collection docs: probe 6"):
        call_command("verifybackup", good.backup_id, "--deep", "--json", stdout=out)
    shown = json.loads(out.getvalue())["results"]["qdrant"]
    assert not shown["ok"] and shown["recall"]["docs"] < 1 and len(shown["probes"]["docs"]["failed"]) == 5
    assert dashboard_recall(admin_client, "qdrant") == f"docs {shown['recall']['docs']:.2f}"
    # ... and a restore of it is rolled back: the store is as it was before.
    damaged = restores.start_restore(good.backup_id, confirm=True)
    assert damaged.status == RunStatus.ROLLED_BACK, damaged.error
    assert "does not answer the backup's probes" in damaged.error and "collection docs: probe 6 (point" in damaged.error
    assert qdrant_data.read_all(qdrant_path) == before
    assert Verification.objects.filter(trigger=Trigger.RESTORE).first().status == RunStatus.FAILED


def test_qdrant_probes_with_a_lower_threshold_and_none(qdrant_path, sources, settings):
    qdrant_fill(qdrant_path)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    settings.BACKUP_PROBES = "2"
    good = backups.create_backup(["qdrant"])
    assert len(good.manifest["components"]["qdrant"]["probes"]["docs"]["probes"]) == 4
    alter_text_vectors(qdrant_path)
    component = components.get_component("qdrant")
    strict = probes.check_probes(component, good.manifest["components"]["qdrant"])["docs"]
    settings.BACKUP_PROBE_MIN_RECALL = "0.0"  # read at use
    lenient = probes.check_probes(component, good.manifest["components"]["qdrant"])["docs"]
    assert not strict["ok"] and lenient["ok"] and lenient["recall"] == strict["recall"] < 1
    settings.BACKUP_PROBES = 0
    plain = backups.create_backup(["qdrant"])
    assert "probes" not in plain.manifest["components"]["qdrant"]
    assert restores.start_restore(plain.backup_id, confirm=True).status == RunStatus.COMPLETED
    assert not Verification.objects.filter(trigger=Trigger.RESTORE).exists()  # nothing recorded to check


# --- Chroma (folder mode) ------------------------------------------------------------------------------

def test_chroma_probes_rehearsal_restore_and_a_damaged_set(tmp_path, sources, backup_storage_dir):
    from tests.components import test_chroma as chroma_data

    path = tmp_path / "chroma"
    chroma_data.fill(chroma_data.persistent(path))
    stored = chroma_data.dump(chroma_data.persistent(path))
    chroma_data.release()
    vectors = {name: dict(zip(c["ids"], c["embeddings"].tolist())) for name, c in stored.items()}
    sources(chroma=(ENGINES["chroma"], {"path": str(path)}))
    good = backups.create_backup(["chroma"])
    assert good.status == RunStatus.COMPLETED, good.error
    recorded = good.manifest["components"]["chroma"]["probes"]
    assert_recorded(recorded["docs"], vectors["docs"], "cosine")
    assert_recorded(recorded["notes"], vectors["notes"], "l2", k=2)  # only two items

    rehearsal = verification.verify(good.backup_id, deep=True)
    assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error
    assert recall_of(rehearsal.results["chroma"]) == {"docs": 1.0, "notes": 1.0}

    # Every docs vector negated in the live folder: the live store fails the probes.
    docs = chroma_data.persistent(path).get_collection("docs", embedding_function=None)
    ids = stored["docs"]["ids"]
    for start in range(0, len(ids), 500):
        docs.update(ids=ids[start:start + 500], embeddings=-stored["docs"]["embeddings"][start:start + 500])
    chroma_data.release()
    live = probes.check_probes(components.get_component("chroma"), good.manifest["components"]["chroma"])
    assert not live["docs"]["ok"] and live["notes"]["ok"] and live["docs"]["recall"] < 1
    altered = backups.create_backup(["chroma"])

    restore = restores.start_restore(good.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    assert recall_of(check.results["chroma"]) == {"docs": 1.0, "notes": 1.0}
    chroma_data.assert_same(chroma_data.dump(chroma_data.persistent(path)), stored)
    chroma_data.release()

    swap_artifact(backup_storage_dir, good, altered, "chroma.tar.zst")
    failed = verification.verify(good.backup_id, deep=True)
    assert failed.status == RunStatus.FAILED and "collection docs: probe 1 (point doc-" in failed.error
    assert "collection notes" not in failed.error and failed.results["chroma"]["counts"] == {"docs": 1500, "notes": 2}
    damaged = restores.start_restore(good.backup_id, confirm=True)
    assert damaged.status == RunStatus.ROLLED_BACK, damaged.error
    assert "collection docs: probe 1 (point doc-" in damaged.error
    chroma_data.assert_same(chroma_data.dump(chroma_data.persistent(path)), stored)
    chroma_data.release()


def test_chroma_server_probes(chroma_server, sources):  # noqa: F811 (the fixture imported above)
    from tests.components import test_chroma as chroma_data

    client = chroma_data.chromadb.HttpClient(host="127.0.0.1", port=chroma_server,
                                             settings=chroma_data.chroma_settings())
    chroma_data.fill(client, seed=1)
    stored = chroma_data.dump(client)
    sources(chroma=(ENGINES["chroma"], {"host": "127.0.0.1", "port": chroma_server, "batch_size": 400}))
    backup = backups.create_backup(["chroma"])
    recorded = backup.manifest["components"]["chroma"]["probes"]
    assert_recorded(recorded["docs"], dict(zip(stored["docs"]["ids"], stored["docs"]["embeddings"].tolist())),
                    "cosine")
    rehearsal = verification.verify(backup.backup_id, deep=True)  # into scratch collections on the server
    assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error
    assert recall_of(rehearsal.results["chroma"]) == {"docs": 1.0, "notes": 1.0}
    assert sorted(c.name for c in client.list_collections()) == ["docs", "notes"]
    client.get_collection("docs").update(ids=stored["docs"]["ids"][:750],
                                         embeddings=-stored["docs"]["embeddings"][:750])
    assert not probes.check_probes(components.get_component("chroma"), backup.manifest["components"]["chroma"])[
        "docs"]["ok"]
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert recall_of(Verification.objects.filter(trigger=Trigger.RESTORE).first().results["chroma"]) == {
        "docs": 1.0, "notes": 1.0}


def test_brute_force_in_batches_is_the_exact_search():
    rng = np.random.default_rng(5)
    data = rng.standard_normal((1000, 6))
    queries = data[:4]
    for metric in ("l2", "cosine", "ip"):
        search = probes.BruteForce(queries, metric, limit=10)
        for start in range(0, 1000, 128):  # pages as a store gives them
            search.add(list(range(start, min(start + 128, 1000))), data[start:start + 128])
        if metric == "l2":
            distance = ((data[None, :, :] - queries[:, None, :]) ** 2).sum(axis=2)
        elif metric == "ip":
            distance = 1 - queries @ data.T
        else:
            distance = 1 - (queries @ data.T) / np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(data, axis=1))
        for row, found in zip(distance, search.results()):
            assert [i for i, _ in found] == list(np.argsort(row, kind="stable")[:10])
            assert [d for _, d in found] == pytest.approx(sorted(row)[:10])


# --- PostgreSQL (float-array column; pgvector: test_pgvector.py) ----------------------------------------

def pg_vectors(dbname, rows=400, dim=8, seed=3):
    rng = np.random.default_rng(seed)
    data = {i: rng.standard_normal(dim).tolist() for i in range(1, rows + 1)}
    with pg_connect(dbname) as conn:
        conn.execute("CREATE TABLE chunks (id int PRIMARY KEY, body text, embedding float8[])")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO chunks VALUES (%s, %s, %s)", [(i, f"chunk {i}", v) for i, v in data.items()])
    return {str(i): v for i, v in data.items()}


def pg_rows(dbname):
    with pg_connect(dbname) as conn:
        return conn.execute("SELECT * FROM chunks ORDER BY id").fetchall()


def test_postgres_float_array_probes_side_target_restore_and_damage(pg_database, make_pg_database, sources,
                                                                     backup_storage_dir):
    vectors = pg_vectors(pg_database)
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "vector_columns": "chunks.embedding"}))
    good = backups.create_backup(["postgres"])
    assert good.status == RunStatus.COMPLETED, good.error
    facts = good.manifest["components"]["postgres"]
    assert_recorded(facts["probes"]["chunks.embedding"], vectors, "l2", key=md5)

    rehearsal = verification.verify(good.backup_id, deep=True)
    assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error
    assert recall_of(rehearsal.results["postgres"]) == {"chunks.embedding": 1.0}

    # A copy of the database as a side-by-side target, then the live one damaged.
    copy = make_pg_database()
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE "{copy}"')
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{pg_database}"')
    original = pg_rows(pg_database)
    with pg_connect(pg_database) as conn:
        conn.execute("UPDATE chunks SET embedding = ARRAY(SELECT -x FROM unnest(embedding) x)")
    component = components.get_component("postgres")
    live = probes.check_probes(component, facts)["chunks.embedding"]
    assert not live["ok"] and "collection chunks.embedding: probe 1 (point " in live["failed"][0]
    side = probes.check_probes(component, facts, {"dbname": copy})["chunks.embedding"]
    assert side["ok"] and side["recall"] == 1.0
    altered = backups.create_backup(["postgres"])

    restore = restores.start_restore(good.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert pg_rows(pg_database) == original
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    assert recall_of(check.results["postgres"]) == {"chunks.embedding": 1.0}
    assert check.results["postgres"]["counts"] == {"chunks": 400}

    swap_artifact(backup_storage_dir, good, altered, "postgres.dump")
    failed = verification.verify(good.backup_id, deep=True)
    assert failed.status == RunStatus.FAILED and "collection chunks.embedding: probe 1 (point " in failed.error
    assert "counts differ" not in failed.error
    damaged = restores.start_restore(good.backup_id, confirm=True)
    assert damaged.status == RunStatus.ROLLED_BACK, damaged.error
    assert "collection chunks.embedding: probe" in damaged.error and pg_rows(pg_database) == original


def test_postgres_vector_columns_that_cannot_be_probed(pg_database, sources):
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE nokey (embedding float8[]); CREATE TABLE words (id int PRIMARY KEY, v text)")
    for column, why in (("nokey.embedding", "has none of one column"), ("words.v", "is of type text"),
                        ("missing.embedding", "there is no such column")):
        sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "vector_columns": column}))
        backup = backups.create_backup(["postgres"])
        assert backup.status == RunStatus.COMPLETED, backup.error  # the dump is sound; the probes are a warning
        facts = backup.manifest["components"]["postgres"]
        assert "probes" not in facts and why in facts["probes_error"]
        assert "warning: postgres: probes not recorded: postgres: " in backup.log
    from backups_app.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="not table.column or schema.table.column"):
        components.engines()["postgres"]("postgres", {**pg_options(pg_database), "vector_columns": "a.b.c.d"})


# --- BACKUP_PROBE_COMMAND, settings ---------------------------------------------------------------------------

SCRIPT = """
import os, sys
print("restored", os.environ["BACKUP_RESTORE_ID"], os.environ["BACKUP_ID"], os.environ["UPLOADS_DIR"])
print("targets", os.environ["BACKUP_TARGETS"])
print("secret s3cr3t-db-value")
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("form", ["json", "string"])
def test_probe_command_runs_after_a_restore_and_its_failure_rolls_back(tmp_path, sources, settings, monkeypatch,
                                                                       form):
    folder = tmp_path / "uploads"
    sources(uploads=uploads_source(folder, {"doc.txt": "original"}))
    monkeypatch.setitem(settings.DATABASES["default"], "PASSWORD", "s3cr3t-db-value")  # a secret mask() hides
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    backup = backups.create_backup(["uploads"])

    def command(status):
        argv = [sys.executable, str(script), str(status)]
        return json.dumps(argv) if form == "json" else f"{sys.executable} '{script}' {status}"

    settings.BACKUP_PROBE_COMMAND = command(0)
    (folder / "doc.txt").write_text("changed")
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    result = check.results["probe_command"]
    assert result["ok"] and result["exit_status"] == 0 and check.status == RunStatus.COMPLETED
    assert f"restored {restore.restore_id} {backup.backup_id} {folder}" in result["output"]
    assert '"uploads": {"path": ' in result["output"]
    assert "secret ***" in result["output"] and "s3cr3t-db-value" not in check.log + restore.log

    settings.BACKUP_PROBE_COMMAND = command(3)
    (folder / "doc.txt").write_text("changed")
    failed = restores.start_restore(backup.backup_id, confirm=True)
    assert failed.status == RunStatus.ROLLED_BACK, failed.error
    assert "BACKUP_PROBE_COMMAND exited with 3" in failed.error and (folder / "doc.txt").read_text() == "changed"
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    assert check.status == RunStatus.FAILED and check.results["probe_command"]["exit_status"] == 3


TARGET_SCRIPT = """
import os, sys
print(sys.argv[1] + "=" + os.environ[sys.argv[1]])
"""


@pytest.mark.parametrize("store", ["uploads", "sqlite", "redis", "config", "objects"])
def test_the_probe_command_of_a_side_by_side_restore_sees_where_it_wrote(tmp_path, sources, settings, request,
                                                                          store):
    """Stores without probes too: their variables in the command's environment name the restored
    copy (the folder, the files, the db index, the key prefix), not the live data."""
    side = tmp_path / "side"
    if store == "uploads":
        sources(uploads=uploads_source(tmp_path / "uploads", {"doc.txt": "original"}))
        options, variable, expected = {"directory": str(side)}, "UPLOADS_DIR", str(side)
    elif store == "sqlite":
        sources(sqlite=sqlite_source(tmp_path / "live" / "app.sqlite3", "notes", ["a"]))
        options, variable, expected = {"directory": str(side)}, "SQLITE_PATHS", str(side / "app.sqlite3")
    elif store == "redis":
        url = request.getfixturevalue("redis_url")
        sources(redis=(ENGINES["redis"], {"url": url}))
        with redis_client(url, 0) as client:
            client.set("k", "v")
        options, variable, expected = {"db": "5"}, "REDIS_DBS", "5"
    elif store == "config":
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / ".env").write_text("DEBUG=0\n")
        sources(config=(ENGINES["config"], {"paths": str(tmp_path / "app" / ".env")}))
        options, variable, expected = {"directory": str(side)}, "CONFIG_PATHS", str(side / ".env")
    else:
        (tmp_path / "objects").mkdir()
        (tmp_path / "objects" / "a.bin").write_bytes(b"object")
        sources(objects=(ENGINES["objects"], {"path": str(tmp_path / "objects")}))
        options, variable, expected = {"prefix": "restored/"}, "OBJECTS_S3_PREFIX", "restored/"
    backup = backups.create_backup([store])
    assert backup.status == RunStatus.COMPLETED, backup.error
    script = tmp_path / "probe.py"
    script.write_text(TARGET_SCRIPT)
    settings.BACKUP_PROBE_COMMAND = json.dumps([sys.executable, str(script), variable])
    restore = restores.start_restore(backup.backup_id, [store], {store: options}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    result = Verification.objects.filter(trigger=Trigger.RESTORE).first().results["probe_command"]
    assert result["exit_status"] == 0 and result["output"] == f"{variable}={expected}\n"


def test_probe_command_that_cannot_start(tmp_path, sources, settings):
    sources(uploads=uploads_source(tmp_path / "uploads", {"doc.txt": "x"}))
    backup = backups.create_backup(["uploads"])
    settings.BACKUP_PROBE_COMMAND = json.dumps([str(tmp_path / "no-such-program")])
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK
    assert "BACKUP_PROBE_COMMAND did not finish: cannot run " in restore.error
    assert "No such file or directory" in restore.error and "Error" not in restore.error


@pytest.mark.parametrize("name, value, check_id, text", [
    ("BACKUP_PROBES", "many", "backups.E040", "BACKUP_PROBES='many': give a whole number from 0"),
    ("BACKUP_PROBES", "-1", "backups.E040", "from 0 (no probes) to 1000"),
    ("BACKUP_PROBE_MIN_RECALL", "1.5", "backups.E041", "give a number from 0 to 1"),
    ("BACKUP_PROBE_COMMAND", '["python", 3]', "backups.E042", "must be a list of non-empty strings"),
    ("BACKUP_PROBE_COMMAND", "python 'unclosed", "backups.E042", "cannot be read (No closing quotation)"),
])
def test_bad_probe_settings_fail_the_system_check(settings, name, value, check_id, text):
    assert checks.check_probes(None) == []
    setattr(settings, name, value)
    (error,) = checks.check_probes(None)
    assert error.id == check_id and text in error.msg and error.hint.startswith("Example: ")


def test_recall_counts_a_tie_at_the_cut_as_found():
    recorded = [["a", 0.0], ["b", 0.5], ["c", 0.5]]
    assert probes.recall(recorded, [("a", 0.0), ("c", 0.5), ("b", 0.5)]) == 1.0
    assert probes.recall(recorded, [("a", 0.0), ("b", 0.5), ("d", 0.5)]) == 1.0  # d ties c at the cut
    assert probes.recall(recorded, [("a", 0.0), ("b", 0.5), ("d", 0.6)]) == pytest.approx(2 / 3)
    assert probes.recall(recorded, [("a", 0.0), ("d", 0.2), ("e", 0.5)]) == pytest.approx(2 / 3)
    assert probes.choose(iter(["x", "y", "z", "w"]), 2) == sorted(["x", "y", "z", "w"], key=sha)[:2]


def test_a_store_that_cannot_answer_the_probes_warns_and_the_backup_completes(sources):
    """The Qdrant stand-in (tests/components/fake_qdrant.py) models the snapshot path only: it holds
    no vectors and refuses searches, as a server refusing them would. The backup still completes,
    with the reason in its log and manifest, and the rehearsal says the set has no probes. The
    search it refused asked for an exact one (a server's searches are approximate otherwise)."""
    from tests.components.fake_qdrant import FakeQdrant

    server = FakeQdrant()
    try:
        server.add("docs", points=50, size=4096, seed=1)
        sources(qdrant=(ENGINES["qdrant"], {"url": server.url}))
        backup = backups.create_backup(["qdrant"])
        assert backup.status == RunStatus.COMPLETED, backup.error
        facts = backup.manifest["components"]["qdrant"]
        assert "probes" not in facts and "404" in facts["probes_error"]
        assert "warning: qdrant: probes not recorded: qdrant: a probe search failed: " in backup.log
        with pytest.raises(ComponentError, match="a probe search failed: .*404"), \
                components.get_component("qdrant").searcher() as searcher:
            searcher.nearest("docs", "", [[0.5, 0.5]], 10)
        (search,) = [body for _, path, _, body, _ in server.requests if path == "/collections/docs/points/query"]
        assert search["params"] == {"exact": True} and search["limit"] == 10  # exact search, not the HNSW index
        rehearsal = verification.verify(backup.backup_id, deep=True)
        assert rehearsal.status == RunStatus.COMPLETED, rehearsal.error
        assert rehearsal.results["qdrant"]["note"].startswith("no probes: the backup could not record them (")
        assert "probes" not in rehearsal.results["qdrant"]
    finally:
        server.close()


def test_the_probe_command_sees_side_by_side_targets(pg_database, qdrant_path, sources):
    sources(postgres=(ENGINES["postgres"], {**pg_options(pg_database), "password": "pw-s3cr3t"}),
            qdrant=(ENGINES["qdrant"], {"path": qdrant_path, "collections": "docs,notes"}))
    env = probes.target_environment([(components.get_component("postgres"), {"dbname": "docs_scratch"}),
                                     (components.get_component("qdrant"), {"collections": {"docs": "docs_restored"}})])
    assert env["POSTGRES_DB"] == "docs_scratch" and env["POSTGRES_PASSWORD"] == "pw-s3cr3t"  # to connect with
    assert env["QDRANT_PATH"] == qdrant_path and env["QDRANT_COLLECTIONS"] == "docs_restored"
    shown = json.loads(env["BACKUP_TARGETS"])
    assert shown["postgres"]["dbname"] == "docs_scratch" and "password" not in shown["postgres"]
    assert shown["qdrant"]["collections"] == ["docs_restored"]


def test_side_by_side_restores_are_probed_where_they_wrote(qdrant_path, sources, backup_storage_dir):
    from tests.components import test_qdrant as qdrant_data

    qdrant_fill(qdrant_path)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    good = backups.create_backup(["qdrant"])
    restore = restores.start_restore(good.backup_id, options={"qdrant": {"suffix": "_restored"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    check = Verification.objects.filter(trigger=Trigger.RESTORE).first()
    assert recall_of(check.results["qdrant"]) == {"docs": 1.0} and "counts" not in check.results["qdrant"]
    assert "qdrant: docs: probe recall@10 1.00 over 10 probe(s)" in restore.log

    # A damaged set restored side by side fails its probes; the live collection is not touched.
    alter_text_vectors(qdrant_path)
    swap_artifact(backup_storage_dir, good, backups.create_backup(["qdrant"]), "qdrant_docs.jsonl.zst")
    live = qdrant_data.read_all(qdrant_path)
    damaged = restores.start_restore(good.backup_id, options={"qdrant": {"suffix": "_again"}}, confirm=True)
    assert damaged.status == RunStatus.FAILED, damaged.error
    assert "collection docs: probe 6 (point " in damaged.error and "The live data was not touched" in damaged.error
    assert qdrant_data.read_all(qdrant_path) == live


def test_the_searches_stream_memory_does_not_grow_with_the_collection():
    import tracemalloc

    def peak(batches):
        rng = np.random.default_rng(1)
        queries = rng.standard_normal((5, 64))
        tracemalloc.start()
        search = probes.BruteForce(queries, "cosine")
        for b in range(batches):
            search.add([f"id-{b}-{i}" for i in range(500)], rng.standard_normal((500, 64)))
        chosen = probes.choose((f"id-{n}" for n in range(batches * 500)), 5)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(chosen) == 5 and all(len(r) == 10 for r in search.results())
        return top

    small, large = peak(4), peak(40)  # 2,000 and 20,000 items
    assert large < small * 1.5, (small, large)
