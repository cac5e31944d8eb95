"""Both Qdrant methods against a real Qdrant server, when QDRANT_TEST_URL (or QDRANT_URL) names one
(with QDRANT_TEST_API_KEY / QDRANT_API_KEY if it needs a key). The test works in a collection of
its own and drops it afterwards; other collections on the server are never touched."""

import os
import uuid

import pytest
from qdrant_client import QdrantClient, models

from backups_app import components
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.components.test_qdrant import DOCS_CONFIG, make_points, points_of
from tests.stacks import ENGINES

URL = os.environ.get("QDRANT_TEST_URL") or os.environ.get("QDRANT_URL")
API_KEY = os.environ.get("QDRANT_TEST_API_KEY") or os.environ.get("QDRANT_API_KEY")

pytestmark = pytest.mark.skipif(not URL, reason="no real Qdrant server: set QDRANT_TEST_URL to run these")


@pytest.fixture
def server_collection():
    client = QdrantClient(url=URL, api_key=API_KEY, check_compatibility=False)
    name = f"bk_test_{uuid.uuid4().hex[:12]}"
    client.create_collection(name, **DOCS_CONFIG)
    client.upsert(name, make_points(2000, seed=5), wait=True)
    yield client, name
    for listed in client.get_collections().collections:
        if listed.name.startswith(name):
            client.delete_collection(listed.name)
    client.close()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["snapshot", "export"])
def test_round_trip_against_a_real_server(server_collection, sources, method):
    client, name = server_collection
    before = points_of(client, name)  # a server stores cosine vectors normalised: compare with what it returns
    alias = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=f"{name}-a"))
    client.update_collection_aliases([alias])
    sources(qdrant=(ENGINES["qdrant"], {"url": URL, "api_key": API_KEY or "", "collections": name, "method": method}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["qdrant"]["counts"] == {name: 2000}

    reader = backups.open_reader(backup)
    assert components.get_component("qdrant").rehearse(reader, reader.artifacts_of("qdrant"), print) == {name: 2000}

    client.delete_collection(name)  # drops the alias too
    client.create_collection(name, **DOCS_CONFIG)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert points_of(client, name) == before
    assert [a.alias_name for a in client.get_collection_aliases(name).aliases] == [f"{name}-a"]
    assert client.list_snapshots(name) == []  # the uploaded files were deleted
    assert sorted(c.name for c in client.get_collections().collections if c.name.startswith(name)) == [name]
