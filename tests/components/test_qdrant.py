"""Qdrant's export method against qdrant-client's local mode (real storage, reopened between
steps: local mode hands back cosine vectors normalised within the session that wrote them)."""

import json
import re
import shutil
import subprocess
import uuid
import warnings

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from backups_app import components
from backups_app.archive.exports import artifact_stem, read_export
from backups_app.components.qdrant import main as qdrant_main
from backups_app.errors import ComponentError, ConfigurationError
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.stacks import ENGINES

DOCS_CONFIG = {
    "vectors_config": {"text": models.VectorParams(size=16, distance=models.Distance.COSINE),
                       "image": models.VectorParams(size=4, distance=models.Distance.EUCLID)},
    "sparse_vectors_config": {"keywords": models.SparseVectorParams()},
}


def make_points(n, seed=0):
    rng = np.random.default_rng(seed)
    text = rng.standard_normal((n, 16)).astype(np.float32)
    image = rng.random((n, 4)).astype(np.float32)
    points = []
    for i in range(n):
        keyword_ids = sorted({(i * 37 + k * 1013) % 5000 for k in range(1 + i % 5)})
        points.append(models.PointStruct(
            id=i * 7 if i % 2 else str(uuid.UUID(int=seed * 10**9 + i + 1)),
            vector={"text": text[i].tolist(), "image": image[i].tolist(),
                    "keywords": models.SparseVector(indices=keyword_ids,
                                                    values=rng.random(len(keyword_ids)).astype(np.float32).tolist())},
            payload={"title": f"문서 {i} — ✓ Zoë", "n": i, "score": float(i) / 3,
                     "nested": {"tags": ["a", {"deep": [i, None, True]}], "empty": {}}},
        ))
    return points


def fill(path, n, seed=0, name="docs"):
    client = QdrantClient(path=path)
    client.create_collection(name, **DOCS_CONFIG)
    points = make_points(n, seed)
    for start in range(0, n, 2000):
        client.upsert(name, points[start:start + 2000], wait=True)
    client.close()
    return {str(p.id): p.model_dump(mode="json", include={"vector", "payload"}) for p in points}


def points_of(client, name):
    found, offset = {}, None
    while True:
        points, offset = client.scroll(name, limit=5000, offset=offset, with_payload=True, with_vectors=True)
        found.update({str(p.id): p.model_dump(mode="json", include={"vector", "payload"}) for p in points})
        if offset is None:
            return found


def read_all(path, name="docs"):
    client = QdrantClient(path=path)  # a fresh client: what is stored, not what the session cached
    try:
        return points_of(client, name)
    finally:
        client.close()


def collections(path):
    client = QdrantClient(path=path)
    try:
        return sorted(c.name for c in client.get_collections().collections)
    finally:
        client.close()


@pytest.mark.django_db
def test_export_round_trip_of_20k_points_is_exact(qdrant_path, sources, backup_storage_dir):
    expected = fill(qdrant_path, 20_000)
    client = QdrantClient(path=qdrant_path)
    client.create_collection("plain", vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    client.upsert("plain", [models.PointStruct(id=i, vector=[i, 0.5, -1.25], payload={}) for i in range(10)])
    client.close()
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))

    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    facts = backup.manifest["components"]["qdrant"]
    assert facts["counts"] == {"docs": 20_000, "plain": 10}
    assert facts["method"] == "export" and facts["server_version"] == "local"
    assert sorted(backup.manifest["artifacts"]) == ["qdrant_docs.jsonl.zst", "qdrant_plain.jsonl.zst"]

    # Stock zstd reads the export; the header names the collection and its vector config.
    artifact = backup_storage_dir / backup.backup_id / "qdrant_docs.jsonl.zst"
    plain = subprocess.run(["zstd", "-dc", str(artifact)], capture_output=True, check=True).stdout.splitlines()
    header = json.loads(plain[0])
    assert header["collection"] == "docs" and header["config"]["params"]["vectors"]["text"]["distance"] == "Cosine"
    assert len(plain) == 20_002 and json.loads(plain[-1]) == {"end": True, "records": 20_000}

    # Damage the live store, then restore (the component directly: the service path, with its
    # safety backup, is covered below on a smaller collection).
    client = QdrantClient(path=qdrant_path)
    client.delete("docs", models.PointIdsList(points=[1 * 7, 3 * 7, 5 * 7]))
    client.set_payload("docs", {"title": "changed"}, points=[9 * 7])
    client.delete_collection("plain")
    client.close()
    component = components.get_component("qdrant")
    reader = backups.open_reader(backup)
    component.restore(reader, reader.artifacts_of("qdrant"), component.parse_restore_options({}), print)

    client = QdrantClient(path=qdrant_path)
    try:
        assert points_of(client, "docs") == expected
        assert points_of(client, "plain") == {str(i): {"vector": [float(i), 0.5, -1.25], "payload": {}}
                                              for i in range(10)}
        config = client.get_collection("docs").config.params
    finally:
        client.close()
    assert config.vectors["text"].distance == models.Distance.COSINE and config.vectors["image"].size == 4
    assert set(config.sparse_vectors) == {"keywords"}


@pytest.mark.django_db
def test_service_restore_plan_rehearsal_and_absent_collections(qdrant_path, sources):
    expected = fill(qdrant_path, 300, seed=1)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path, "collections": "docs,later"}))
    assert backups.create_backup(["qdrant"]).status == RunStatus.FAILED  # 'later' does not exist yet

    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error

    reader = backups.open_reader(backup)
    component = components.get_component("qdrant")
    assert component.rehearse(reader, reader.artifacts_of("qdrant"), print) == {"docs": 300}
    assert collections(qdrant_path) == ["docs"]  # the scratch collection is gone

    client = QdrantClient(path=qdrant_path)
    client.delete("docs", models.FilterSelector(filter=models.Filter(must=[
        models.FieldCondition(key="n", range=models.Range(lt=100))])))
    client.create_collection("later", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.close()

    assert components.get_component("qdrant").inspect() == {"docs": 200, "later": 0}
    plan = restores.plan_restore(backup.backup_id)
    assert plan["counts"]["qdrant"] == {"live": {"docs": 200, "later": 0}, "backup": {"docs": 300}}
    assert plan["affected"]["qdrant.docs"] == 200

    # Listing the collections makes 'later' part of the selection; it did not exist in the backup.
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path, "collections": "docs,later"}))
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert read_all(qdrant_path) == expected
    assert collections(qdrant_path) == ["docs", "later"]  # not in the backup: left alone

    shutil.rmtree(qdrant_path)  # a new machine: the folder is created by the restore
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert read_all(qdrant_path) == expected


@pytest.mark.django_db
def test_failed_restore_rolls_back_and_drops_collections_it_created(qdrant_path, sources, monkeypatch):
    fill(qdrant_path, 50, seed=2)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    client = QdrantClient(path=qdrant_path)
    client.delete_collection("docs")
    client.create_collection("other", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert("other", [models.PointStruct(id=1, vector=[1.0, 2.0])])
    client.close()

    real_upsert, calls = QdrantClient.upsert, []

    def upsert_failing_once(self, *args, **kwargs):  # the restore fails, the rollback works
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("disk full while upserting")
        return real_upsert(self, *args, **kwargs)

    monkeypatch.setattr(QdrantClient, "upsert", upsert_failing_once)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK
    assert "disk full while upserting" in restore.error
    monkeypatch.undo()
    assert collections(qdrant_path) == ["other"]  # the half-made 'docs' is gone, 'other' untouched
    assert read_all(qdrant_path, "other") == {"1": {"vector": [1.0, 2.0], "payload": {}}}


@pytest.mark.django_db
def test_export_imports_by_hand_with_the_module_command(qdrant_path, sources, backup_storage_dir, tmp_path, capsys):
    expected = fill(qdrant_path, 120, seed=3)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    target = str(tmp_path / "by-hand")
    artifact = backup_storage_dir / backup.backup_id / "qdrant_docs.jsonl.zst"
    # `python -m backups_app.components.qdrant ...`, called in-process to spare an interpreter start.
    assert qdrant_main([str(artifact), "--path", target, "--collection", "copy"]) == 0
    assert capsys.readouterr().out.strip().endswith("copy: 120 points")
    assert read_all(target, "copy") == expected


def test_truncated_or_foreign_exports_are_refused():
    import io

    good = b'{"format":"qdrant-collection","collection":"c"}\n{"id":1}\n{"id":2}\n{"end":true,"records":2}\n'
    header, records = read_export(io.BytesIO(good), "qdrant-collection")
    assert header["collection"] == "c" and [r["id"] for r in records] == [1, 2]
    for data, message in [(good[:good.index(b'{"end"')], "truncated"),
                          (good.replace(b'"records":2', b'"records":3'), "trailer says 3"),
                          (b'{"format":"chroma-collection"}\n', "Not a qdrant-collection export")]:
        with pytest.raises(ComponentError, match=message):
            header, records = read_export(io.BytesIO(data), "qdrant-collection")
            list(records)


def test_configuration_errors_name_the_fix(qdrant_path):
    from backups_app.components.qdrant import QdrantComponent

    with pytest.raises(ConfigurationError, match="exactly one of QDRANT_URL"):
        QdrantComponent("qdrant", {"url": "http://127.0.0.1:1", "path": qdrant_path})
    with pytest.raises(ConfigurationError, match="QDRANT_METHOD=export"):
        QdrantComponent("qdrant", {"path": qdrant_path, "method": "snapshot"})
    with pytest.raises(ConfigurationError, match="is not a method"):
        QdrantComponent("qdrant", {"path": qdrant_path, "method": "copy"})
    assert artifact_stem("qdrant", "docs") == "qdrant_docs"
    assert re.fullmatch(r"qdrant_______x-[0-9a-f]{8}", artifact_stem("qdrant", "문서/../x"))
    assert artifact_stem("qdrant", "a/b") != artifact_stem("qdrant", "a_b")
    assert artifact_stem("qdrant", "v1.2") == "qdrant_v1_2-" + artifact_stem("qdrant", "v1.2")[-8:]


@pytest.mark.django_db
def test_local_folder_in_use_or_missing_is_a_clear_error(qdrant_path, sources):
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.FAILED and "does not exist (check QDRANT_PATH)" in backup.error
    fill(qdrant_path, 5)
    holder = QdrantClient(path=qdrant_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backup = backups.create_backup(["qdrant"])
    finally:
        holder.close()
    assert backup.status == RunStatus.FAILED
    assert "cannot open the Qdrant folder" in backup.error and "run a Qdrant server" in backup.error


@pytest.mark.django_db
def test_export_records_config_and_aliases_and_puts_them_back(qdrant_path, sources):
    expected = fill(qdrant_path, 40, seed=4)
    client = QdrantClient(path=qdrant_path)
    client.create_collection("faq", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             metadata={"embedding_model": "e5-small", "built": "2026-11-30"})
    client.update_collection_aliases([
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="docs", alias_name="docs-live")),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="faq", alias_name="faq-live"))])
    client.close()
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path, "embedding_model": "bge-m3"}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    facts = backup.manifest["components"]["qdrant"]
    assert facts["aliases"] == [{"alias_name": "docs-live", "collection_name": "docs"},
                                {"alias_name": "faq-live", "collection_name": "faq"}]
    assert facts["configs"]["faq"]["config"]["metadata"] == {"embedding_model": "e5-small", "built": "2026-11-30"}
    assert set(facts["configs"]["docs"]["config"]["params"]["vectors"]) == {"text", "image"}

    # A new embedding model for faq (deleting it drops its alias), and an alias moved.
    client = QdrantClient(path=qdrant_path)
    client.delete_collection("faq")
    client.create_collection("faq", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE),
                             metadata={"embedding_model": "e5-large"})
    client.update_collection_aliases([
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="docs-live")),
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="faq", alias_name="docs-live"))])
    client.close()

    shown = restores.plan_restore(backup.backup_id, verify=False)["preflight"]["qdrant"]
    faq = shown["collections"]["faq"]
    assert (faq["backup"]["vectors"], faq["live"]["vectors"]) == ({"size": 2, "distance": "Dot"},
                                                                  {"size": 3, "distance": "Cosine"})
    assert (faq["backup"]["embedding_model"], faq["live"]["embedding_model"]) == ("e5-small", "e5-large")
    assert shown["collections"]["docs"]["backup"]["embedding_model"] == "bge-m3"  # the source's label
    assert shown["aliases"]["live"] == [{"alias_name": "docs-live", "collection_name": "faq"}]

    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    client = QdrantClient(path=qdrant_path)
    try:
        assert sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases) == [
            ("docs-live", "docs"), ("faq-live", "faq")]
        info = client.get_collection("faq")
        assert info.config.metadata == {"embedding_model": "e5-small", "built": "2026-11-30"}
        assert info.config.params.vectors == models.VectorParams(size=2, distance=models.Distance.DOT)
        assert points_of(client, "docs") == expected
    finally:
        client.close()
