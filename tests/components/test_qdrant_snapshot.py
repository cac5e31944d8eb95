"""Qdrant's snapshot method at its HTTP boundary: a loopback server as strict as Qdrant 1.19 on the
snapshot path (tests/components/fake_qdrant.py), real sockets, real streaming, real backup sets.
Every request the component sends is checked against Qdrant's OpenAPI spec when the test ends."""

import hashlib
import re
import subprocess
import time
import tracemalloc
from urllib.parse import quote

import pytest

from backups_app import components
from backups_app.errors import ComponentError
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.components import qdrant_openapi
from tests.components.fake_qdrant import FakeQdrant, collection_config
from tests.stacks import ENGINES

API_KEY = "s3cret-qdrant-key-6f1e"


@pytest.fixture
def fake():
    server = FakeQdrant(api_key=API_KEY)
    server.add("docs", points=1234, size=3 * 1024 * 1024 + 17, seed=1)
    server.add("notes", points=5, size=2048, seed=2)
    yield server
    server.close()
    assert qdrant_openapi.problems(server.requests) == []  # what was sent is Qdrant's API


@pytest.fixture
def qdrant_source(sources, fake):
    def configure(**options):
        sources(qdrant=(ENGINES["qdrant"], {"url": fake.url, "api_key": API_KEY, **options}))

    configure()
    return configure


def stored(fake):
    return {name: (state["points"], state["sha256"]) for name, state in fake.collections.items()}


def run_text(run):
    return f"{run.log}\n{run.error}\n{run.manifest if hasattr(run, 'manifest') else ''}"


@pytest.mark.django_db
def test_snapshot_round_trip(fake, qdrant_source, backup_storage_dir):
    before = stored(fake)
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    facts = backup.manifest["components"]["qdrant"]
    assert facts["method"] == "snapshot" and facts["server_version"] == "1.12.4"
    assert facts["counts"] == {"docs": 1234, "notes": 5}
    artifacts = backup.manifest["artifacts"]
    assert artifacts["qdrant_docs.snapshot"]["sha256"] == fake.collections["docs"]["sha256"]
    assert artifacts["qdrant_docs.snapshot"]["size"] == fake.collections["docs"]["size"]
    assert fake.snapshots == {}  # deleted on the server once stored
    folder = backup_storage_dir / backup.backup_id
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder, check=True)

    # The by-hand restore from docs/vectors.md: curl uploads the snapshot with its checksum.
    checksum = artifacts["qdrant_notes.snapshot"]["sha256"]
    subprocess.run(["curl", "-sSf", "-X", "POST", "-H", f"api-key: {API_KEY}", "-F", "snapshot=@qdrant_notes.snapshot",
                    f"{fake.url}/collections/by-hand/snapshots/upload?priority=snapshot&wait=true&checksum={checksum}"],
                   cwd=folder, check=True, capture_output=True)
    assert fake.collections.pop("by-hand") == fake.collections["notes"]

    fake.add("docs", points=1, size=100, seed=9)
    del fake.collections["notes"]
    plan = restores.plan_restore(backup.backup_id)
    assert plan["counts"]["qdrant"] == {"live": {"docs": 1}, "backup": {"docs": 1234, "notes": 5}}

    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert stored(fake) == before
    restored = [(c, q) for c, q in fake.uploads if c in ("docs", "notes")][-2:]
    assert sorted(c for c, _ in restored) == ["docs", "notes"]
    for collection, query in restored:
        assert query["priority"] == "snapshot" and query["wait"] == "true"
        assert query["checksum"] == before[collection][1]
    for run in (backup, restore):
        assert API_KEY not in run_text(run)


@pytest.mark.django_db
def test_keep_snapshots_and_rehearsal(fake, qdrant_source):
    qdrant_source(keep_snapshots=True, collections="docs")
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert [name for _, name in fake.snapshots] == ["docs-1-2026-11-22-01-02-03.snapshot"]
    before = stored(fake)

    reader = backups.open_reader(backup)
    component = components.get_component("qdrant")
    assert component.rehearse(reader, reader.artifacts_of("qdrant"), print) == {"docs": 1234}
    assert stored(fake) == before  # the scratch collection was dropped, live data untouched
    assert re.fullmatch(r"docs-rehearsal-[0-9a-f]{8}", fake.uploads[-1][0])


@pytest.mark.django_db
@pytest.mark.parametrize("fault,message", [
    ({"create": 500}, "refused POST /collections/docs/snapshots: HTTP 500 Service internal error"),
    ({"create": "timeout"}, "did not answer POST /collections/docs/snapshots within 1 s (raise QDRANT_TIMEOUT"),
    ({"download": "timeout"}, "did not answer GET /collections/docs/snapshots/docs-1-"),
    ({"download": 500}, "HTTP 500"),
    ({"download": 404}, "HTTP 404"),
    ({"create": "bad-checksum"}, "arrived damaged"),
    ({"list_collections": 503}, "refused GET /collections: HTTP 503"),
])
def test_backup_failures_are_clear_and_leave_nothing(fake, qdrant_source, backup_storage_dir, fault, message):
    qdrant_source(timeout=1)
    fake.faults = fault
    fake.delay = 2
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.FAILED
    assert message in backup.error
    assert API_KEY not in run_text(backup)
    assert not (backup_storage_dir / backup.backup_id).exists()
    fake.faults = {}
    assert fake.snapshots == {}  # the server-side snapshot is deleted even when the download failed


@pytest.mark.django_db
def test_missing_collection_unreachable_server_and_wrong_key(fake, qdrant_source, sources):
    qdrant_source(collections="docs,ghost")
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.FAILED
    assert "ghost do not exist in Qdrant (check QDRANT_COLLECTIONS" in backup.error

    sources(qdrant=(ENGINES["qdrant"], {"url": fake.url, "api_key": "not-the-key"}))
    backup = backups.create_backup(["qdrant"])  # Qdrant answers 401 in plain text, not JSON
    assert backup.status == RunStatus.FAILED
    assert ("refused GET /collections: HTTP 401 Must provide an API key or an Authorization bearer token (no API "
            "key, or not this server's: check QDRANT_API_KEY)") in backup.error

    port = fake.server.server_address[1]
    fake.close()
    sources(qdrant=(ENGINES["qdrant"], {"url": f"http://127.0.0.1:{port}", "api_key": API_KEY}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.FAILED and "Cannot reach Qdrant at http://127.0.0.1" in backup.error
    assert components.get_component("qdrant").describe() == {
        "url": f"http://127.0.0.1:{port}", "path": "", "collections": [], "method": "auto",
        "keep_snapshots": False, "timeout": 300, "batch_size": 500, "embedding_model": ""}


@pytest.mark.django_db
def test_version_mismatch_is_refused_unless_allowed(fake, qdrant_source):
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    before = stored(fake)
    fake.version = "1.14.0"
    fake.add("docs", points=2, size=64, seed=5)
    plan = restores.plan_restore(backup.backup_id, verify=False)
    assert not plan["ok"] and "made by Qdrant 1.12.4; this server runs 1.14.0" in plan["refusals"][0]
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED  # refused in the plan: no safety backup, nothing touched
    assert "Restore refused before any change" in restore.error and restore.safety_backup is None
    assert "made by Qdrant 1.12.4; this server runs 1.14.0" in restore.error
    assert "qdrant.allow_version_mismatch=true" in restore.error
    assert fake.collections["docs"]["points"] == 2

    fake.version = "1.13.2"  # the next minor version is fine
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert stored(fake) == before

    fake.version = "2.0.0"
    restore = restores.start_restore(backup.backup_id, confirm=True,
                                     options={"qdrant": {"allow_version_mismatch": "true"}})
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "allow_version_mismatch" in restore.log


@pytest.mark.django_db
@pytest.mark.parametrize("fault,message", [({"upload": 500}, "HTTP 500"),
                                           ({"upload": "bad-checksum"}, "Snapshot checksum mismatch")])
def test_failed_upload_rolls_back(fake, qdrant_source, fault, message):
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    fake.add("docs", points=7, size=300, seed=3)
    fake.add("fresh", points=1, size=100, seed=4)
    before = stored(fake)
    fake.faults, fake.once = fault, {"upload"}  # the restore's upload fails, the rollback's works
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK, restore.error
    assert message in restore.error
    assert fake.faults == {}
    assert stored(fake) == before


def _rss_peak_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _vm_hwm_kb():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def _vm_rss_kb():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


@pytest.mark.django_db
def test_200_mb_snapshot_streams_with_flat_memory(fake, qdrant_source, backup_storage_dir):
    size = 200 * 1024 * 1024
    fake.add("big", points=987_654, size=size, seed=11)
    qdrant_source(collections="big")
    component = components.get_component("qdrant")

    measured = {}
    for step in ("backup", "restore"):
        can_reset = _rss_peak_reset()
        rss_before = _vm_rss_kb()
        tracemalloc.start()
        if step == "backup":
            backup = backups.create_backup(["qdrant"])
            assert backup.status == RunStatus.COMPLETED, backup.error
        else:
            fake.add("big", points=1, size=10, seed=1)
            reader = backups.open_reader(backup)
            component.restore(reader, reader.artifacts_of("qdrant"), component.parse_restore_options({}), print)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        measured[step] = (peak, (_vm_hwm_kb() - rss_before) * 1024 if can_reset else None)

    artifact = backup_storage_dir / backup.backup_id / "qdrant_big.snapshot"
    assert artifact.stat().st_size == size
    assert fake.collections["big"]["points"] == 987_654 and fake.collections["big"]["size"] == size
    assert fake.collections["big"]["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    for step, (python_peak, rss_growth) in measured.items():
        print(f"{step}: Python peak {python_peak / 2**20:.1f} MiB, RSS growth "
              f"{'n/a' if rss_growth is None else f'{rss_growth / 2**20:.1f} MiB'} for a 200 MiB snapshot")
        assert python_peak < 24 * 2**20, (step, python_peak)
        if rss_growth is not None:
            assert rss_growth < 64 * 2**20, (step, rss_growth)


# --- Fidelity on a real server's terms (issue 11) ---------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_snapshot_restore_rollback_and_rehearsal_with_and_without_encryption(fake, qdrant_source, request, encrypted):
    if encrypted:
        request.getfixturevalue("age_key")
    before = stored(fake)
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert bool(backup.manifest["artifacts"]["qdrant_docs.snapshot"].get("encryption")) == encrypted

    reader = backups.open_reader(backup)
    component = components.get_component("qdrant")
    assert component.rehearse(reader, reader.artifacts_of("qdrant"), print) == {"docs": 1234, "notes": 5}

    fake.add("docs", points=3, size=500, seed=8)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert stored(fake) == before
    # The upload declared the decrypted size and sent the decrypted bytes' checksum.
    assert [q["checksum"] for c, q in fake.uploads if c == "docs"][-1] == before["docs"][1]

    fake.add("docs", points=3, size=500, seed=8)
    changed = stored(fake)
    fake.faults, fake.once = {"upload": 500}, {"upload"}  # the restore fails; the rollback (encrypted too) works
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK, restore.error
    assert stored(fake) == changed
    assert fake.snapshots == {}  # no uploaded file left behind by the restores, the rollback or the rehearsal


@pytest.mark.django_db
def test_collection_recreated_with_another_vector_config_is_dropped_and_recovered(fake, qdrant_source):
    fake.add("docs", points=1234, size=4096, seed=1, config=collection_config(metadata={"embedding_model": "e5-small"}))
    before = stored(fake)
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    recorded = backup.manifest["components"]["qdrant"]["configs"]["docs"]
    assert recorded["config"]["params"]["vectors"] == {"size": 4, "distance": "Cosine"}

    # A new embedding model: other size and distance; notes gets another shard count.
    fake.add("docs", points=10, size=900, seed=3, config=collection_config(
        vectors={"size": 8, "distance": "Dot"}, metadata={"embedding_model": "bge-m3"}))
    fake.add("notes", points=2, size=900, seed=4, config=collection_config(shard_number=3))
    recreated = stored(fake)
    upload = _raw_upload(fake, "docs", backup)  # the stand-in refuses it like Qdrant does
    assert upload.status_code == 400 and "Snapshot is not compatible with existing collection" in upload.text

    plan = restores.plan_restore(backup.backup_id)
    assert plan["ok"], plan["refusals"]
    shown = plan["preflight"]["qdrant"]["collections"]
    assert shown["docs"]["backup"]["vectors"] == {"size": 4, "distance": "Cosine"}
    assert shown["docs"]["live"]["vectors"] == {"size": 8, "distance": "Dot"}
    assert (shown["docs"]["backup"]["embedding_model"], shown["docs"]["live"]["embedding_model"]) == ("e5-small",
                                                                                                      "bge-m3")
    assert (shown["notes"]["backup"]["shard_number"], shown["notes"]["live"]["shard_number"]) == (1, 3)
    notes = plan["preflight"]["qdrant"]["notes"]
    assert any(n.startswith("collection docs: vectors, metadata differ from the backup (Qdrant refuses such a "
                            "snapshot in place): the restore drops it and recovers it") for n in notes), notes
    assert any(n.startswith("collection notes: shard_number differ") for n in notes), notes
    assert any("embedding model is e5-small, the live one bge-m3" in n for n in notes), notes

    fake.faults, fake.once = {"upload": 500}, {"upload"}  # after the drop: the rollback recreates the new config
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK, restore.error
    assert stored(fake) == recreated

    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "differ from the backup; dropping it" in restore.log
    assert stored(fake) == before
    assert fake.collections["docs"]["config"] == recorded["config"]


def _raw_upload(fake, collection, backup, checksum=None, into=None):
    """Upload the backed-up snapshot of ``collection`` straight to the stand-in (into ``into``, by
    default the same collection), the way curl does."""
    import httpx

    reader = backups.open_reader(backup)
    artifact, = (a for a, c in reader.facts_of("qdrant")["collections"].items() if c == collection)
    with reader.open(artifact) as stream:
        data = stream.read(1 << 30)
    query = {"priority": "snapshot", "wait": "true", "checksum": checksum or reader.meta(artifact)["sha256"]}
    return httpx.post(f"{fake.url}/collections/{quote(into or collection, safe='')}/snapshots/upload", params=query,
                      headers={"api-key": API_KEY}, files={"snapshot": (artifact, data)})


@pytest.mark.django_db
def test_aliases_are_backed_up_and_put_back_atomically(fake, qdrant_source):
    fake.aliases = {"docs-live": "docs", "search": "docs", "notes-live": "notes"}
    qdrant_source(collections="docs")
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["qdrant"]["aliases"] == [  # the selection's aliases only
        {"alias_name": "docs-live", "collection_name": "docs"}, {"alias_name": "search", "collection_name": "docs"}]

    qdrant_source()
    whole = backups.create_backup(["qdrant"])
    assert len(whole.manifest["components"]["qdrant"]["aliases"]) == 3  # the whole server: every alias

    fake.drop("docs")  # deleting a collection drops its aliases (the stand-in does as Qdrant does)
    assert fake.aliases == {"notes-live": "notes"}
    fake.add("docs", points=2, size=600, seed=6)
    fake.aliases.update({"search": "notes", "docs-new": "docs"})
    qdrant_source(collections="docs")
    plan = restores.plan_restore(backup.backup_id, verify=False)
    assert plan["preflight"]["qdrant"]["aliases"] == {
        "backup": backup.manifest["components"]["qdrant"]["aliases"],
        "live": [{"alias_name": "docs-new", "collection_name": "docs"}]}

    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert fake.aliases == {"docs-live": "docs", "search": "docs", "notes-live": "notes"}
    changes = [body for method, path, _, body, _ in fake.requests if path == "/collections/aliases"]
    assert changes == [{"actions": [  # one atomic change
        {"delete_alias": {"alias_name": "search"}}, {"delete_alias": {"alias_name": "docs-new"}},
        {"create_alias": {"collection_name": "docs", "alias_name": "docs-live"}},
        {"create_alias": {"collection_name": "docs", "alias_name": "search"}}]}]

    restore = restores.start_restore(whole.backup_id, confirm=True)  # already right: no alias change at all
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert len([p for _, p, _, _, _ in fake.requests if p == "/collections/aliases"]) == 1


@pytest.mark.django_db
def test_an_upload_that_timed_out_is_waited_out_before_the_rollback(fake, qdrant_source):
    qdrant_source(timeout=1, collections="docs")
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    fake.add("docs", points=7, size=300, seed=3)
    before = stored(fake)
    # The recovery goes on on the server after the client gave up; before 1.19 the one finishing last wins.
    fake.faults, fake.once, fake.delay = {"upload": "timeout"}, {"upload"}, 2.5
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK, restore.error
    assert "did not answer POST /collections/docs/snapshots/upload within 1 s" in restore.error
    assert "no snapshot recovery of docs runs on the server any more" in restore.log
    time.sleep(1)  # anything still running on the server would have landed by now
    assert fake.recovering == {"docs": 0}
    assert stored(fake) == before
    assert fake.snapshots == {}


@pytest.mark.django_db
@pytest.mark.parametrize("fake_options,fault", [({"s3_storage": True}, None), ({}, "malformed-checksum")])
def test_a_null_or_malformed_snapshot_checksum_counts_as_absent(fake_options, fault, sources, backup_storage_dir):
    server = FakeQdrant(api_key=API_KEY, **fake_options)
    try:
        server.add("docs", points=3, size=5000, seed=1)
        if fault:
            server.faults = {"create": fault}
        sources(qdrant=(ENGINES["qdrant"], {"url": server.url, "api_key": API_KEY}))
        backup = backups.create_backup(["qdrant"])
        assert backup.status == RunStatus.COMPLETED, backup.error
        assert "Qdrant gave no usable checksum for snapshot docs-1-" in backup.log
        assert backup.manifest["artifacts"]["qdrant_docs.snapshot"]["sha256"] == server.collections["docs"]["sha256"]
        assert server.snapshots == {}
    finally:
        server.close()
    assert qdrant_openapi.problems(server.requests) == []


@pytest.mark.django_db
def test_a_collection_scoped_key_backs_up_but_cannot_restore(fake, sources):
    fake.scoped_keys = {"docs-only-key": "docs"}
    sources(qdrant=(ENGINES["qdrant"], {"url": fake.url, "api_key": "docs-only-key", "collections": "docs"}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED
    assert "HTTP 403" in restore.error and "needs a key with global manage access" in restore.error
    assert "docs-only-key" not in run_text(restore)


@pytest.mark.django_db
def test_a_name_the_upload_endpoint_refuses_is_caught_in_the_plan(fake, qdrant_source):
    fake.add("team:docs", points=4, size=700, seed=5)  # a legacy name: snapshots work, uploads do not
    qdrant_source(collections="team:docs")
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    upload = _raw_upload(fake, "team:docs", backup)
    assert upload.status_code == 422 and "collection name cannot contain" in upload.text

    plan = restores.plan_restore(backup.backup_id, verify=False)
    assert not plan["ok"]
    assert "collection name 'team:docs' has a character Qdrant refuses on snapshot upload" in plan["refusals"][0]
    assert "QDRANT_METHOD=export" in plan["refusals"][0]
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.FAILED and "Restore refused before any change" in restore.error
    reader = backups.open_reader(backup)
    with pytest.raises(ComponentError, match="refuses on snapshot upload"):  # verification says so too
        components.get_component("qdrant").rehearse(reader, reader.artifacts_of("qdrant"), print)
    assert sorted(fake.collections) == ["docs", "notes", "team:docs"]


@pytest.mark.django_db
def test_the_plan_shows_config_payload_indexes_and_embedding_model(fake, qdrant_source):
    schema = {"title": {"data_type": "text", "params": {"type": "text", "tokenizer": "word"}},
              "n": {"data_type": "integer", "params": {"type": "integer", "lookup": True, "range": True}}}
    config = collection_config(vectors={"text": {"size": 16, "distance": "Cosine", "memory": "cached"}},
                               sparse_vectors={"keywords": {"modifier": "idf"}}, payload={"memory": "cold"})
    config["quantization_config"] = {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    fake.add("docs", points=1234, size=4096, seed=1, config=config, payload_schema=schema)
    qdrant_source(embedding_model="text-embedding-3-small", collections="docs")
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    facts = backup.manifest["components"]["qdrant"]
    assert facts["configs"]["docs"] == {"config": config, "payload_schema": schema}  # no per-index point counts
    assert facts["embedding_model"] == "text-embedding-3-small"

    qdrant_source(embedding_model="text-embedding-3-large", collections="docs")
    shown = restores.plan_restore(backup.backup_id, verify=False)["preflight"]["qdrant"]
    assert shown["collections"]["docs"]["backup"] == {
        "vectors": {"text": {"size": 16, "distance": "Cosine", "memory": "cached"}},
        "sparse_vectors": {"keywords": {"modifier": "idf"}}, "shard_number": 1, "replication_factor": 1,
        "on_disk_payload": True, "payload": {"memory": "cold"},
        "quantization": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
        "payload_indexes": {"title": "text", "n": "integer"}, "embedding_model": "text-embedding-3-small"}
    assert shown["collections"]["docs"]["live"] == {**shown["collections"]["docs"]["backup"],
                                                    "embedding_model": "text-embedding-3-large"}
    assert shown["notes"] == ["collection docs: the backup's embedding model is text-embedding-3-small, the live one "
                              "text-embedding-3-large: queries must use the backup's model"]


def test_the_openapi_check_catches_requests_qdrant_does_not_take():
    assert qdrant_openapi.problems([
        ("POST", "/collections/docs/snapshots/upload", {"priority": "snapshots"}, None, "multipart/form-data; b=x"),
        ("POST", "/collections/aliases", {}, {"actions": [{"create_alias": {"alias_name": "a"}}]}, "application/json"),
        ("GET", "/collections/docs/backup", {}, None, ""),
        ("POST", "/collections/docs/snapshots", {"wiat": "true"}, None, ""),
        ("POST", "/collections/docs/points/count", {}, {"exact": "yes"}, "application/json"),
        ("DELETE", "/collections/docs", {}, {"force": True}, "application/json"),
    ]) == [
        "POST /collections/docs/snapshots/upload: query parameter priority='snapshots': 'snapshots' is not one of "
        "['no_sync', 'snapshot', 'replica']",
        "POST /collections/aliases: body: {'create_alias': {'alias_name': 'a'}} is not valid under any of the given "
        "schemas at ['actions', 0]",
        "GET /collections/docs/backup: no such operation in Qdrant's API",
        "POST /collections/docs/snapshots: query parameter 'wiat' is not declared",
        "POST /collections/docs/points/count: body: 'yes' is not of type 'boolean' at ['exact']",
        "DELETE /collections/docs: sends application/json where the API takes none",
    ]


@pytest.mark.django_db
def test_the_stand_in_refuses_what_qdrant_refuses(fake, qdrant_source):
    import httpx

    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert httpx.get(f"{fake.url}/").json()["version"] == "1.12.4"  # the only route without a key
    unauthorised = httpx.get(f"{fake.url}/collections")
    assert unauthorised.status_code == 401 and unauthorised.headers["content-type"].startswith("text/plain")
    assert _raw_upload(fake, "notes", backup, checksum="abc").status_code == 422  # not 64 hex characters
    assert _raw_upload(fake, "notes", backup, checksum="0" * 64).status_code == 400  # not the bytes' checksum
    assert _raw_upload(fake, "notes", backup, into="copy").status_code == 200  # a new collection from the snapshot
    assert fake.files("copy") == ["qdrant_notes.snapshot"]  # the uploaded file stays on the server
    fake.drop("copy")
    assert ("copy", "qdrant_notes.snapshot") in fake.snapshots  # ... even when its collection is deleted
    telemetry = httpx.get(f"{fake.url}/telemetry", params={"details_level": 1}, headers={"api-key": API_KEY})
    assert telemetry.json()["result"]["collections"]["snapshots"] == []  # per-collection entries need level 2
