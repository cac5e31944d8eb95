"""Deep verification (restore rehearsal) of the vector stores through the verification service:
scratch collections and folders only, counts equal to the manifest's, live data untouched."""

import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, verification
from tests.components.test_chroma import persistent, release
from tests.components.test_qdrant import collections, fill, qdrant_path  # noqa: F401 (fixture)
from tests.components.test_qdrant_snapshot import API_KEY, fake  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_rehearsal_of_qdrant_both_methods_and_chroma(sources, qdrant_path, fake, tmp_path):  # noqa: F811
    fill(qdrant_path, 40, seed=4)
    chroma_path = tmp_path / "chroma"
    notes = persistent(chroma_path).create_collection("notes", embedding_function=None)
    notes.add(ids=["a", "b", "c"], embeddings=[[1.0], [2.0], [3.0]])
    release()
    sources(qdrant=("backups_app.components.qdrant.QdrantComponent", {"path": qdrant_path}),
            qdrant_server=("backups_app.components.qdrant.QdrantComponent", {"url": fake.url, "api_key": API_KEY}),
            chroma=("backups_app.components.chroma.ChromaComponent", {"path": str(chroma_path)}))
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    live_server = dict(fake.collections)

    result = verification.verify(backup.backup_id, deep=True)

    assert result.status == RunStatus.COMPLETED, result.error
    assert result.results["qdrant"]["counts"] == {"docs": 40}
    assert result.results["qdrant_server"]["counts"] == {"docs": 1234, "notes": 5}
    assert result.results["chroma"]["counts"] == {"notes": 3}
    assert all(result.results[name]["ok"] for name in ("qdrant", "qdrant_server", "chroma"))
    assert collections(qdrant_path) == ["docs"] and fake.collections == live_server
