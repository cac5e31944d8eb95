"""ChromaDB in both modes against the real thing: a PersistentClient folder, and `chroma run` on a
free loopback port started by the test."""

import importlib.util
import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest

from backups_app import components
from backups_app.components.chroma import installed_migrations, migrations
from backups_app.components.chroma import main as chroma_main
from backups_app.errors import ConfigurationError
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.servers import free_port
from tests.stacks import ENGINES

chromadb = pytest.importorskip("chromadb")
from chromadb.api.client import SharedSystemClient  # noqa: E402
from chromadb.config import Settings  # noqa: E402


def chroma_settings():
    """Fresh each time: chromadb's client constructors write into the Settings they are given."""
    return Settings(anonymized_telemetry=False)


def fill(client, seed=0):
    rng = np.random.default_rng(seed)
    docs = client.create_collection("docs", metadata={"topic": "문서 ✓", "version": 2},
                                    configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    n = 1500
    docs.add(ids=[f"doc-{i}" for i in range(n)],
             embeddings=rng.standard_normal((n, 12)).astype(np.float32),
             documents=[f"본문 {i} — Zoë" if i % 7 else None for i in range(n)],
             metadatas=[{"n": i, "ratio": i / 7, "ok": bool(i % 2), "tag": f"t{i % 5}"} for i in range(n)],
             uris=[f"s3://bucket/{i}.pdf" if i % 3 == 0 else None for i in range(n)])
    notes = client.create_collection("notes", embedding_function=None)
    notes.add(ids=["a", "b"], embeddings=[[0.5, -1.0], [2.0, 0.25]], documents=["first", "second"])


def dump(client):
    found = {}
    for listed in client.list_collections():
        collection = client.get_collection(listed.name, embedding_function=None)
        items = collection.get(include=["embeddings", "documents", "metadatas", "uris"])
        order = np.argsort(items["ids"])
        found[collection.name] = {
            "metadata": collection.metadata, "configuration": collection.configuration_json,
            "ids": [items["ids"][i] for i in order],
            "embeddings": np.asarray(items["embeddings"])[order],
            "documents": [items["documents"][i] for i in order],
            "metadatas": [items["metadatas"][i] for i in order],
            "uris": [items["uris"][i] for i in order],
        }
    return found


def assert_same(after, before, tolerance=0.0):
    assert sorted(after) == sorted(before)
    for name, expected in before.items():
        got = after[name]
        for key in ("metadata", "configuration", "ids", "documents", "metadatas", "uris"):
            assert got[key] == expected[key], (name, key)
        if tolerance:
            assert np.abs(got["embeddings"] - expected["embeddings"]).max() <= tolerance
        else:
            assert np.array_equal(got["embeddings"], expected["embeddings"])


def persistent(path):
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


def release():
    """Close every client this process holds (the app's writers are stopped during a file copy)."""
    SharedSystemClient.clear_system_cache()


@pytest.mark.django_db
def test_path_mode_round_trip_is_exact(tmp_path, sources, backup_storage_dir):
    path = tmp_path / "chroma"
    fill(persistent(path))
    before = dump(persistent(path))
    release()
    sources(chroma=(ENGINES["chroma"], {"path": str(path)}))

    backup = backups.create_backup(["chroma"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["chroma"]["counts"] == {"docs": 1500, "notes": 2}
    listing = subprocess.run(["tar", "--zstd", "-tf", str(backup_storage_dir / backup.backup_id / "chroma.tar.zst")],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "chroma.sqlite3" in listing and not any(n.startswith("chroma.sqlite3-") for n in listing)

    client = persistent(path)
    client.delete_collection("notes")
    client.get_collection("docs").delete(ids=[f"doc-{i}" for i in range(100)])
    release()
    plan = restores.plan_restore(backup.backup_id)
    assert plan["counts"]["chroma"] == {"live": {"docs": 1400}, "backup": {"docs": 1500, "notes": 2}}

    reader = backups.open_reader(backup)
    assert components.get_component("chroma").rehearse(reader, ["chroma.tar.zst"], print) == {"docs": 1500,
                                                                                              "notes": 2}
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert_same(dump(persistent(path)), before)
    release()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".chroma")) == []


@pytest.mark.django_db
def test_path_mode_refuses_a_folder_that_is_not_chroma(tmp_path, sources):
    (tmp_path / "chroma").mkdir()
    sources(chroma=(ENGINES["chroma"], {"path": str(tmp_path / "chroma")}))
    backup = backups.create_backup(["chroma"])
    assert backup.status == RunStatus.FAILED and "has no chroma.sqlite3 (check CHROMA_PATH)" in backup.error


@pytest.fixture
def chroma_server(tmp_path):
    """`chroma run` on a free loopback port with its own data folder."""
    program = Path(sys.executable).parent / "chroma"
    for _attempt in range(3):
        port = free_port()
        proc = subprocess.Popen([str(program), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        pytest.fail("chroma run did not start")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.django_db
def test_server_mode_round_trip(chroma_server, sources, backup_storage_dir, capsys):
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server, settings=chroma_settings())
    fill(client, seed=1)
    before = dump(client)
    sources(chroma=(ENGINES["chroma"], {"host": "127.0.0.1", "port": chroma_server, "batch_size": 400}))

    backup = backups.create_backup(["chroma"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["chroma"]["counts"] == {"docs": 1500, "notes": 2}
    assert sorted(backup.manifest["artifacts"]) == ["chroma_docs.jsonl.zst", "chroma_notes.jsonl.zst"]
    lines = subprocess.run(["zstd", "-dc", str(backup_storage_dir / backup.backup_id / "chroma_docs.jsonl.zst")],
                           capture_output=True, check=True).stdout.splitlines()
    header = json.loads(lines[0])
    assert header["metadata"] == {"topic": "문서 ✓", "version": 2}
    assert header["configuration"]["hnsw"]["space"] == "cosine"
    assert len(lines) == 1502

    client.delete_collection("notes")
    client.get_collection("docs").delete(ids=["doc-1", "doc-2"])
    client.create_collection("extra", embedding_function=None).add(ids=["x"], embeddings=[[1.0]])
    reader = backups.open_reader(backup)
    assert components.get_component("chroma").rehearse(reader, reader.artifacts_of("chroma"), print) == {
        "docs": 1500, "notes": 2}
    assert sorted(c.name for c in client.list_collections()) == ["docs", "extra"]

    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    after = dump(client)
    assert after.pop("extra")["ids"] == ["x"]  # not in the backup: left alone
    # Chroma's HTTP API prints embeddings with about 8 significant digits (float32 needs 9), so a
    # trip through it moves a value by up to ~4e-7; path mode is bit-exact.
    assert_same(after, before, tolerance=1e-6)

    # By hand, without the app: `python -m backups_app.components.chroma` loads an export into a
    # new collection (called in-process here to spare an interpreter start).
    assert chroma_main([str(backup_storage_dir / backup.backup_id / "chroma_notes.jsonl.zst"), "--host", "127.0.0.1",
                        "--port", str(chroma_server), "--collection", "notes-by-hand"]) == 0
    assert capsys.readouterr().out.strip().endswith("notes-by-hand: 2 items")
    by_hand = dump(client)["notes-by-hand"]
    assert by_hand["ids"] == ["a", "b"] and by_hand["documents"] == ["first", "second"]


@pytest.mark.django_db
def test_server_mode_unreachable_and_missing_client(sources, monkeypatch):
    sources(chroma=(ENGINES["chroma"], {"host": "127.0.0.1", "port": free_port()}))
    backup = backups.create_backup(["chroma"])
    assert backup.status == RunStatus.FAILED and "cannot reach Chroma at 127.0.0.1:" in backup.error

    from backups_app.components.chroma import ChromaComponent

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "chromadb"
                        else real_find_spec(name, *a))
    with pytest.raises(ConfigurationError, match=r"pip install chromadb-client==1\.5\.9"):
        ChromaComponent("chroma", {"host": "chroma.internal"})
    ChromaComponent("chroma", {"path": "/srv/chroma"})  # path mode needs no Chroma package
    with pytest.raises(ConfigurationError, match="exactly one of CHROMA_PATH"):
        ChromaComponent("chroma", {"path": "/srv/chroma", "host": "chroma.internal"})


def tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.mark.django_db
@pytest.mark.parametrize("chromadb_here", [True, False], ids=["installed-chromadb", "live-folder"])
def test_folder_from_a_newer_chroma_is_refused_in_the_plan(tmp_path, sources, monkeypatch, chromadb_here):
    path = tmp_path / "chroma"
    fill(persistent(path))
    release()
    installed = migrations(str(path / "chroma.sqlite3"))
    assert installed == installed_migrations() and installed["sysdb"] >= 10  # the compiled core's, too
    sources(chroma=(ENGINES["chroma"], {"path": str(path)}))
    plain = backups.create_backup(["chroma"])
    assert plain.manifest["components"]["chroma"]["migrations"] == installed
    assert restores.plan_restore(plain.backup_id)["ok"]
    # What a newer Chroma leaves: one more migration of its schema, recorded by the backup.
    with closing(sqlite3.connect(path / "chroma.sqlite3")) as conn, conn:
        conn.execute("INSERT INTO migrations VALUES ('sysdb', 99, '00099-future.sqlite.sql', '', '')")
    newer = backups.create_backup(["chroma"])
    assert newer.manifest["components"]["chroma"]["migrations"] == {**installed, "sysdb": 99}
    with closing(sqlite3.connect(path / "chroma.sqlite3")) as conn, conn:
        conn.execute("DELETE FROM migrations WHERE version = 99")
    if not chromadb_here:  # the app's Chroma elsewhere: the live folder tells its schema
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "chromadb"
                            else real_find_spec(name, *a))
    whose = "the installed chromadb" if chromadb_here else f"the live {path / 'chroma.sqlite3'}"
    before = tree_bytes(path)
    plan = restores.plan_restore(newer.backup_id)
    assert plan["refusals"] == [
        f"chroma: the backup's chroma.sqlite3 has schema migrations that {whose} does not know: sysdb 99 (here "
        f"{installed['sysdb']}). Chroma cannot open a database a newer version migrated (downgrades are unsupported): "
        "restore with a Chroma at least as new as the one that made the backup, or back up and restore with the "
        "export method (CHROMA_HOST: collections go through the API into any version)"]
    restore = restores.start_restore(newer.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED and "Restore refused before any change" in restore.error
    assert tree_bytes(path) == before
