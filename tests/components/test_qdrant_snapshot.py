"""Qdrant's snapshot method at its HTTP boundary: a loopback server speaking Qdrant's documented
snapshot API (tests/components/fake_qdrant.py), real sockets, real streaming, real backup sets."""

import hashlib
import re
import subprocess
import tracemalloc

import pytest

from backups_app import components
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.components.fake_qdrant import FakeQdrant
from tests.stacks import ENGINES

API_KEY = "s3cret-qdrant-key-6f1e"


@pytest.fixture
def fake():
    server = FakeQdrant(api_key=API_KEY)
    server.add("docs", points=1234, size=3 * 1024 * 1024 + 17, seed=1)
    server.add("notes", points=5, size=2048, seed=2)
    yield server
    server.close()


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

    sources(qdrant=(ENGINES["qdrant"], {"url": fake.url, "api_key": "wrong"}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.FAILED and "HTTP 403" in backup.error

    port = fake.server.server_address[1]
    fake.close()
    sources(qdrant=(ENGINES["qdrant"], {"url": f"http://127.0.0.1:{port}", "api_key": API_KEY}))
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.FAILED and "Cannot reach Qdrant at http://127.0.0.1" in backup.error
    assert components.get_component("qdrant").describe() == {
        "url": f"http://127.0.0.1:{port}", "path": "", "collections": [], "method": "auto",
        "keep_snapshots": False, "timeout": 300, "batch_size": 500}


@pytest.mark.django_db
def test_version_mismatch_is_refused_unless_allowed(fake, qdrant_source):
    backup = backups.create_backup(["qdrant"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    before = stored(fake)
    fake.version = "1.14.0"
    fake.add("docs", points=2, size=64, seed=5)
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK
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
