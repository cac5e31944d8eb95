"""Qdrant restores under another collection name (qdrant.suffix) and of some collections only
(qdrant.collections): qdrant-client's local mode (export method) and the strict HTTP stand-in
(snapshot method); the live collections and their aliases are not touched."""

import pytest
from qdrant_client import QdrantClient, models

from backups_app.errors import InvalidOption
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from tests.components import qdrant_openapi
from tests.components.fake_qdrant import FakeQdrant
from tests.components.test_qdrant import collections, fill, read_all
from tests.stacks import ENGINES


def restore(backup, **options):
    return restores.start_restore(backup.backup_id, ["qdrant"], {"qdrant": options}, confirm=True)


@pytest.fixture
def local_backup(sources, qdrant_path):
    """Local mode: docs (40 points) and notes (5), alias 'current' → docs; backed up, then docs changed."""
    docs = fill(qdrant_path, 40)
    fill(qdrant_path, 5, seed=3, name="notes")
    client = QdrantClient(path=qdrant_path)
    client.update_collection_aliases([models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs", alias_name="current"))])
    client.close()
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    client = QdrantClient(path=qdrant_path)
    client.delete("docs", models.PointIdsList(points=[7, 21]))
    client.close()
    return qdrant_path, backup, docs


def aliases(path):
    client = QdrantClient(path=path)
    try:
        return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    finally:
        client.close()


@pytest.mark.django_db
def test_suffix_restores_beside_the_live_collections(local_backup):
    path, backup, docs = local_backup
    live = read_all(path)
    plan = restores.plan_restore(backup.backup_id, ["qdrant"], {"qdrant": {"suffix": "_restored"}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["qdrant"]["live"] is False
    assert plan["preflight"]["qdrant"]["restored_as"] == {"docs": "docs_restored", "notes": "notes_restored"}
    run = restore(backup, suffix="_restored")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.safety_backup is None and not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    assert collections(path) == ["docs", "docs_restored", "notes", "notes_restored"]
    assert read_all(path, "docs_restored") == docs
    assert read_all(path) == live and len(live) == 38
    assert aliases(path) == {"current": "docs"}

    # Again: the restored names exist now, so it is refused (nothing there is replaced).
    plan = restores.plan_restore(backup.backup_id, ["qdrant"], {"qdrant": {"suffix": "_restored"}}, verify=False)
    assert any("collection docs_restored exists" in p for p in plan["refusals"])


@pytest.mark.django_db
def test_collections_select_for_a_live_restore(local_backup):
    path, backup, docs = local_backup
    client = QdrantClient(path=path)
    client.delete("notes", models.PointIdsList(points=[7]))
    client.close()
    notes_now = read_all(path, "notes")
    run = restore(backup, collections="docs")
    assert run.status == RunStatus.COMPLETED, run.error
    assert "taking the safety backup of the current data" in run.log  # a live restore, even of one collection
    assert read_all(path) == docs
    assert read_all(path, "notes") == notes_now  # not selected: as it was
    assert aliases(path) == {"current": "docs"}


@pytest.mark.django_db
def test_collections_and_suffix_together(local_backup):
    path, backup, _docs = local_backup
    run = restore(backup, collections="notes", suffix="-old")
    assert run.status == RunStatus.COMPLETED, run.error
    assert collections(path) == ["docs", "notes", "notes-old"]


@pytest.mark.django_db
def test_refusals(local_backup):
    path, backup, _docs = local_backup
    plan = restores.plan_restore(backup.backup_id, ["qdrant"], {"qdrant": {"collections": "docs,nope"}}, verify=False)
    assert any("collection(s) nope are not in this backup (it holds docs, notes)" in p for p in plan["refusals"])
    assert restore(backup, collections="nope").status == RunStatus.FAILED
    client = QdrantClient(path=path)  # a suffix that lands on an alias name
    client.create_collection("x", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.update_collection_aliases([models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="x", alias_name="notesX"))])
    client.close()
    plan = restores.plan_restore(backup.backup_id, ["qdrant"], {"qdrant": {"suffix": "X"}}, verify=False)
    assert any("notesX is an alias" in p for p in plan["refusals"])
    for bad in ("a/b", " _x", "_x?"):
        with pytest.raises(InvalidOption, match="a collection name suffix may not hold"):
            restore(backup, suffix=bad)


@pytest.fixture
def fake():
    server = FakeQdrant()
    server.add("docs", points=120, size=4096, seed=1)
    server.add("notes", points=5, size=2048, seed=2)
    yield server
    server.close()
    assert qdrant_openapi.problems(server.requests) == []


@pytest.mark.django_db
def test_snapshot_method_suffix_on_the_stand_in(sources, fake):
    sources(qdrant=(ENGINES["qdrant"], {"url": fake.url}))
    fake.aliases["live"] = "docs"
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    before = {name: dict(state) for name, state in fake.collections.items()}
    run = restore(backup, suffix="_restored", collections="docs")
    assert run.status == RunStatus.COMPLETED, run.error
    assert sorted(fake.collections) == ["docs", "docs_restored", "notes"]
    assert fake.collections["docs_restored"]["points"] == 120
    assert fake.collections["docs_restored"]["sha256"] == before["docs"]["sha256"]
    assert fake.collections["docs"] == before["docs"] and fake.aliases == {"live": "docs"}
