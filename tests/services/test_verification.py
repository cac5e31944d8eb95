"""Quick verification and the restore rehearsal (deep verify) on real stores: PostgreSQL on the
test server, an uploads folder and a SQLite file, Redis, object storage, config files, Qdrant (both
methods) and Chroma; scratch targets are dropped, counts equal the manifest's, live data untouched."""

import json
import re
import sqlite3
from contextlib import closing

import pytest
import redis
from django.core.management import CommandError, call_command

from backups_app.components.base import Component
from backups_app.components.uploads import UploadsComponent
from backups_app.models import AuditEvent, RunStatus, Verification
from backups_app.services import backups, verification
from tests import stacks
from tests.components.test_chroma import persistent, release
from tests.components.test_qdrant import collections, fill
from tests.components.test_qdrant_snapshot import API_KEY, fake  # noqa: F401 (fixture)
from tests.servers import redis_server
from tests.stacks import ENGINES, pg_connect

pytestmark = pytest.mark.django_db


class NoRehearsalUploads(UploadsComponent):
    rehearse = Component.rehearse  # a store whose module has no rehearsal yet


def scratch_databases():
    with pg_connect("postgres") as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rehearsal_%'")}


def test_rehearsal_restores_every_component_into_scratch_targets(full_stack):
    dbname, uploads, db = full_stack
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    # Live data changes after the backup; the rehearsal must neither see nor touch it.
    with pg_connect(dbname) as conn:
        conn.execute("DELETE FROM docs WHERE id > 10")
    (uploads / "docs" / "file0.txt").unlink()

    result = verification.verify(backup.backup_id, deep=True)

    assert result.status == RunStatus.COMPLETED, result.error
    assert result.results["postgres"]["counts"] == {"docs": 250, "rag.chunks": 1000}
    assert result.results["uploads"]["counts"] == {"files": 5, "bytes": 510}
    assert result.results["sqlite"]["counts"] == {"app": {"notes": 7}}
    for name in ("postgres", "uploads", "sqlite"):
        assert result.results[name]["ok"] and result.results[name]["seconds"] > 0
        assert result.results[name]["counts"] == backup.manifest["components"][name]["counts"]
    scratch = re.search(r"temporary database (rehearsal_\w+)", result.log).group(1)
    assert scratch not in scratch_databases()
    with pg_connect(dbname) as conn:
        assert conn.execute("SELECT count(*) FROM docs").fetchone()[0] == 10
    assert not (uploads / "docs" / "file0.txt").exists()
    assert AuditEvent.objects.filter(action="backup.verify.deep", target=backup.backup_id).exists()


def test_rehearsal_fails_when_restored_counts_differ_from_the_manifest(full_stack, backup_storage_dir):
    backup = backups.create_backup(["postgres"])
    manifest_path = backup_storage_dir / backup.backup_id / "metadata.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["components"]["postgres"]["counts"]["docs"] = 251
    manifest_path.write_text(json.dumps(manifest))
    before = scratch_databases()

    with pytest.raises(CommandError, match="docs 251 in the backup, 250 restored"):
        call_command("verifybackup", backup.backup_id, "--deep")

    result = Verification.objects.get()
    assert result.status == RunStatus.FAILED and not result.results["postgres"]["ok"]
    assert scratch_databases() <= before


def test_damaged_artifact_fails_quick_and_deep_verification(demo_stack, backup_storage_dir):
    backup = backups.create_backup()
    artifact = next(a for a in backup.manifest["artifacts"] if a.startswith("uploads"))
    path = backup_storage_dir / backup.backup_id / artifact
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    quick = verification.verify(backup.backup_id)
    assert quick.status == RunStatus.FAILED and "does not match its manifest" in quick.error
    assert quick.results[artifact]["ok"] is False
    assert all(r["ok"] for name, r in quick.results.items() if name != artifact)
    deep = verification.verify(backup.backup_id, deep=True)
    assert deep.status == RunStatus.FAILED
    assert deep.results["sqlite"]["ok"] and not deep.results["uploads"]["ok"]


def test_component_without_rehearsal_is_skipped_with_a_note(sources, tmp_path):
    demo = stacks.files_stack(tmp_path / "stack")
    sources(files=("tests.services.test_verification.NoRehearsalUploads", demo["uploads"][1]), sqlite=demo["sqlite"])
    backup = backups.create_backup()

    result = verification.verify(backup.backup_id, deep=True)

    assert result.status == RunStatus.COMPLETED, result.error
    assert result.results["files"]["skipped"] is True
    assert "no restore rehearsal yet" in result.results["files"]["note"]
    assert "checksums were verified" in result.results["files"]["note"]
    assert result.results["sqlite"]["counts"] == {"app": {"notes": 7}}
    assert {name: result.state_of(name) for name in result.components} == {"files": "skipped", "sqlite": "done"}


def test_quick_verify_command_records_the_result(demo_stack, capsys):
    backup = backups.create_backup()
    call_command("verifybackup", "latest")
    assert "all artifacts verified" in capsys.readouterr().out
    result = Verification.objects.get()
    assert (result.kind, result.status, result.source_backup_id) == ("quick", RunStatus.COMPLETED, backup.backup_id)
    assert set(result.results) == set(backup.manifest["artifacts"])


def test_sqlite_rehearsal_leaves_no_spool_files(demo_stack, settings):
    backup = backups.create_backup(["sqlite"])
    verification.verify(backup.backup_id, deep=True)
    assert list(settings.BACKUP_SPOOL_DIR.iterdir()) == []
    with closing(sqlite3.connect(demo_stack[1])) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 7


def test_a_verification_whose_worker_died_is_swept(demo_stack, settings):
    from datetime import timedelta

    from django.utils import timezone

    from backups_app.services.sweep import sweep_stale_runs

    backup = backups.create_backup(["sqlite"])
    stale = timezone.now() - timedelta(seconds=settings.BACKUP_STALE_SECONDS + 5)
    stuck = Verification.objects.create(backup=backup, source_backup_id=backup.backup_id, kind="deep",
                                        status=RunStatus.IN_PROGRESS, heartbeat_at=stale)
    assert sweep_stale_runs() == 1
    stuck.refresh_from_db()
    assert stuck.status == RunStatus.FAILED and "stopped responding" in stuck.error


def test_a_queued_verification_of_a_deleted_backup_fails_clearly(demo_stack):
    backup = backups.create_backup(["sqlite"])
    queued = verification.verify(backup.backup_id, deep=True, run_async=True)
    backups.delete_backup(backup.backup_id)
    verification.run_verification(queued.pk)
    queued.refresh_from_db()
    assert queued.status == RunStatus.FAILED
    assert queued.error == f"Backup {backup.backup_id} was deleted before it could be verified."


def test_rehearsal_of_redis_objects_and_config(sources, tmp_path):
    objects_dir, app_dir = tmp_path / "objects", tmp_path / "app"
    (objects_dir / "2024").mkdir(parents=True)
    (objects_dir / "2024" / "a.pdf").write_bytes(b"%PDF" * 100)
    (objects_dir / "b.txt").write_text("b")
    app_dir.mkdir()
    (app_dir / ".env").write_text("DEBUG=false\n")
    with redis_server() as url:
        live = redis.Redis.from_url(url)
        live.set("k1", "v")
        live.hset("h", mapping={"a": 1})
        sources(redis=(ENGINES["redis"], {"url": url}),
                objects=(ENGINES["objects"], {"path": str(objects_dir)}),
                config=(ENGINES["config"], {"paths": str(app_dir / ".env")}))
        backup = backups.create_backup()
        assert backup.status == RunStatus.COMPLETED, backup.error
        live.set("added-after-backup", "x")

        result = verification.verify(backup.backup_id, deep=True)

        assert result.status == RunStatus.COMPLETED, result.error
        assert result.results["redis"]["counts"] == {"db0": 2}
        assert result.results["objects"]["counts"] == {"disk": {"objects": 2, "bytes": 401}}
        assert result.results["config"]["counts"] == {"files": 1, "bytes": 12}
        assert all(result.results[name]["ok"] for name in ("redis", "objects", "config"))
        assert live.dbsize() == 3  # the live server was not touched
        live.close()


def test_rehearsal_of_qdrant_both_methods_and_chroma(sources, qdrant_path, fake, tmp_path):  # noqa: F811
    fill(qdrant_path, 40, seed=4)
    chroma_path = tmp_path / "chroma"
    notes = persistent(chroma_path).create_collection("notes", embedding_function=None)
    notes.add(ids=["a", "b", "c"], embeddings=[[1.0], [2.0], [3.0]])
    release()
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}),
            qdrant_server=(ENGINES["qdrant"], {"url": fake.url, "api_key": API_KEY}),
            chroma=(ENGINES["chroma"], {"path": str(chroma_path)}))
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
