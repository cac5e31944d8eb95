"""QDRANT_* and CHROMA_* environment variables become the `qdrant` and `chroma` sources."""

from pathlib import Path

from backupsite.sources import build_backup_sources

DEMO = Path("/nonexistent/demo")


def test_qdrant_from_host_port_url_or_path():
    sources = build_backup_sources({"QDRANT_HOST": "qdrant", "QDRANT_API_KEY": "k", "QDRANT_COLLECTIONS": "a,b",
                                    "QDRANT_KEEP_SNAPSHOTS": "1"}, DEMO)
    assert sources["qdrant"] == {"ENGINE": "backups_app.components.qdrant.QdrantComponent",
                                 "OPTIONS": {"url": "http://qdrant:6333", "api_key": "k", "collections": "a,b",
                                             "keep_snapshots": "1"}}
    assert build_backup_sources({"QDRANT_HOST": "q", "QDRANT_PORT": "7000"}, DEMO)["qdrant"]["OPTIONS"] == {
        "url": "http://q:7000"}
    assert build_backup_sources({"QDRANT_URL": "https://q.example:6333", "QDRANT_HOST": "ignored"},
                                DEMO)["qdrant"]["OPTIONS"] == {"url": "https://q.example:6333"}
    assert build_backup_sources({"QDRANT_PATH": "/srv/q", "QDRANT_METHOD": "export", "QDRANT_TIMEOUT": "60"},
                                DEMO)["qdrant"]["OPTIONS"] == {"path": "/srv/q", "method": "export", "timeout": "60"}
    assert "qdrant" not in build_backup_sources({}, DEMO) and "chroma" not in build_backup_sources({}, DEMO)
    assert "uploads" not in sources  # a configured vector store turns the demo stack off


def test_chroma_from_path_or_host():
    assert build_backup_sources({"CHROMA_PATH": "/srv/chroma"}, DEMO)["chroma"] == {
        "ENGINE": "backups_app.components.chroma.ChromaComponent", "OPTIONS": {"path": "/srv/chroma"}}
    assert build_backup_sources({"CHROMA_HOST": "chroma", "CHROMA_PORT": "8001"}, DEMO)["chroma"]["OPTIONS"] == {
        "host": "chroma", "port": "8001"}


def test_the_built_sources_are_valid_components():
    from backups_app.components.chroma import ChromaComponent
    from backups_app.components.qdrant import QdrantComponent

    sources = build_backup_sources({"QDRANT_HOST": "q", "QDRANT_COLLECTIONS": "a, b", "QDRANT_KEEP_SNAPSHOTS": "yes",
                                    "CHROMA_HOST": "c"}, DEMO)
    qdrant = QdrantComponent("qdrant", sources["qdrant"]["OPTIONS"])
    assert qdrant.config["collections"] == ["a", "b"] and qdrant.config["keep_snapshots"] is True
    assert qdrant.method == "snapshot"
    assert ChromaComponent("chroma", sources["chroma"]["OPTIONS"]).config["port"] == 8000
