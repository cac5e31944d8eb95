"""Live progress (issue 17 §2): the recorder writes what components stream at most once a second
per run, real backups and restores report bytes against the totals their stores give, the API
exposes the same entries, and a failed backup marks the components it never reached ``not_run``."""

import os
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups_app.archive.storage import backup_storage
from backups_app.archive.writer import BackupSetWriter
from backups_app.components.base import Component
from backups_app.errors import ComponentError
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from backups_app.services.recorder import RunRecorder
from tests import stacks
from tests.api.conftest import staff_user, token_client
from tests.stacks import pg_connect

pytestmark = pytest.mark.django_db
API = "/api/system"


def progress_writes(queries):
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "backups_app_backup" SET "progress"')]


def test_streamed_bytes_reach_the_run_at_most_once_a_second():
    backup = Backup.objects.create(backup_id="backup_20990101_000000", components=["blob"])
    recorder = RunRecorder(backup)
    assert recorder.start()
    writer = BackupSetWriter(backup_storage(), backup.backup_id)
    recorder.progress("blob", "running", bytes_total=10**9)
    writer.current_component, writer.meter = "blob", recorder.meter("blob")
    chunks, chunk = 0, os.urandom(4096)
    with CaptureQueriesContext(connection) as queries, writer.open("blob.bin") as sink:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            sink.write(chunk)
            chunks += 1
            time.sleep(0.001)
        elapsed = time.monotonic() - started
    writes = progress_writes(queries.captured_queries)
    assert chunks > 500, chunks
    # One write per REPORT_SECONDS at most (the first a second after "running" was written), yet
    # it does report while the bytes flow.
    assert 2 <= len(writes) <= elapsed // RunRecorder.REPORT_SECONDS + 1, (len(writes), elapsed)
    stored = Backup.objects.get(pk=backup.pk).progress["blob"]
    assert 0 < stored["bytes_done"] <= chunks * len(chunk) and stored["state"] == "running"
    assert stored["bytes_total"] == 10**9 and stored["started_at"]

    recorder.progress("blob", "done")  # the final count is written with the state, whatever the rate
    stored = Backup.objects.get(pk=backup.pk).progress["blob"]
    assert stored["bytes_done"] == chunks * len(chunk) == writer.artifacts["blob.bin"]["size"]
    assert stored["state"] == "done" and stored["finished_at"] >= stored["started_at"]


def test_backup_and_restore_progress_in_the_api(pg_stack, sync_worker):
    api = token_client(staff_user("root", superuser=True))
    (pg_stack["uploads"] / "big.bin").write_bytes(os.urandom(300_000))
    created = api.post(f"{API}/backup?wait=true", {"include_uploads": True}, content_type="application/json")
    assert created.status_code == 201, created.content
    backup_id = created.json()["backup_id"]
    detail = api.get(f"{API}/backup/{backup_id}").json()
    progress = detail["progress"]
    assert list(progress) == ["postgres", "sqlite", "uploads"]
    sizes = {}
    for artifact in detail["artifacts"]:
        sizes[artifact["component"]] = sizes.get(artifact["component"], 0) + artifact["size_bytes"]
    for name, entry in progress.items():
        assert entry["state"] == "done" and entry["fraction"] == 1 and entry["eta_seconds"] == 0, (name, entry)
        assert entry["started_at"] <= entry["finished_at"] and entry["elapsed_seconds"] >= 0
        assert entry["bytes_per_second"] > 0 and entry["items_total"] is None
    with pg_connect(pg_stack["pg"]) as conn:
        (database_size,), = conn.execute("SELECT pg_database_size(current_database())")
    # Uncompressed artifacts: what was written is what is stored; uploads count before compression.
    assert progress["postgres"]["bytes_total"] == database_size
    assert progress["postgres"]["bytes_done"] == sizes["postgres"]
    assert progress["sqlite"]["bytes_total"] == os.path.getsize(pg_stack["sqlite"])
    assert progress["sqlite"]["bytes_done"] == sizes["sqlite"]
    folder_bytes = sum(p.stat().st_size for p in pg_stack["uploads"].rglob("*") if p.is_file())
    assert progress["uploads"]["bytes_total"] == folder_bytes
    # Plus the tar's headers and its padding to 10 KiB records.
    assert folder_bytes < progress["uploads"]["bytes_done"] < folder_bytes + 32 * 1024

    started = api.post(f"{API}/restore", {"backup_id": backup_id, "confirm": True, "components": ["sqlite", "uploads"]},
                       content_type="application/json")
    assert started.status_code == 202, started.content
    restore = api.get(f"{API}/restore/{started.json()['restore_id']}").json()
    assert restore["status"] == "completed", restore["log_tail"]
    for name in ("sqlite", "uploads"):
        entry = restore["progress"][name]
        # A restore reads every stored byte of the component's artifacts once, checked as it goes.
        assert entry["state"] == "done" and entry["bytes_done"] == entry["bytes_total"] == sizes[name], entry


def test_redis_counts_keys_against_its_key_count(sources, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.mset({f"key:{n}": n for n in range(2500)})
    sources(redis=("backups_app.components.redis.RedisComponent", {"url": redis_url}))
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    entry = backup.progress["redis"]
    assert entry["items_unit"] == "keys" and entry["items_done"] == entry["items_total"] == 2500
    assert entry["bytes_done"] > 2500 and entry["bytes_total"] is None


class BrokenComponent(Component):
    def backup(self, writer, log):
        raise ComponentError("broken: the store went away")


def test_a_failed_backup_marks_the_components_it_never_reached_not_run(sources, tmp_path):
    sources(first=stacks.uploads_source(tmp_path / "first", {"a.txt": "a"}),
            broken=(f"{__name__}.BrokenComponent", {}),
            last=stacks.uploads_source(tmp_path / "last", {"b.txt": "b"}))
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED and "broken: the store went away" in backup.error
    assert {name: backup.state_of(name) for name in backup.components} == {
        "first": "done", "broken": "failed", "last": "not_run"}
    never = backup.progress["last"]
    assert never["started_at"] is None and never["finished_at"] is None and never["bytes_done"] == 0


def test_an_encrypted_restore_counts_the_decrypted_bytes(uploads, age_key):
    (uploads / "big.bin").write_bytes(os.urandom(200_000))
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    (meta,) = backup.manifest["artifacts"].values()
    assert meta["encryption"] and meta["size"] != meta["plaintext_size"]
    restore = restores.start_restore(backup.backup_id, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    entry = restore.progress["uploads"]
    # Decryption runs in a helper thread; the component's own reads are what is counted.
    assert entry["state"] == "done" and entry["bytes_done"] == entry["bytes_total"] == meta["plaintext_size"]
