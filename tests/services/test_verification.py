"""Quick verification and the restore rehearsal (deep verify) on real stores: PostgreSQL on the
test server, an uploads folder and a SQLite file; scratch targets are dropped, live data untouched."""

import json
import re
import sqlite3
from contextlib import closing

import pytest
from django.core.management import CommandError, call_command

from backups_app.components.base import Component
from backups_app.components.uploads import UploadsComponent
from backups_app.models import AuditEvent, RunStatus, Verification
from backups_app.services import backups, verification
from tests.conftest import pg_connect, pg_options
from tests.ops_fixtures import POSTGRES, SQLITE, UPLOADS, make_stack

pytestmark = pytest.mark.django_db


class NoRehearsalUploads(UploadsComponent):
    rehearse = Component.rehearse  # a store whose module has no rehearsal yet


@pytest.fixture
def full_stack(sources, tmp_path, pg_database):
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, title text)")
        conn.execute("INSERT INTO docs (title) SELECT 'doc ' || g FROM generate_series(1, 250) g")
        conn.execute("CREATE SCHEMA rag")
        conn.execute("CREATE TABLE rag.chunks (id int, doc int)")
        conn.execute("INSERT INTO rag.chunks SELECT g, g % 250 FROM generate_series(1, 1000) g")
    uploads, db = make_stack(tmp_path / "stack")
    sources(postgres=(POSTGRES, pg_options(pg_database)), uploads=(UPLOADS, {"path": str(uploads)}),
            sqlite=(SQLITE, {"paths": [str(db)]}))
    return pg_database, uploads, db


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
    uploads, db = make_stack(tmp_path / "stack")
    sources(files=("tests.services.test_verification.NoRehearsalUploads", {"path": str(uploads)}),
            sqlite=(SQLITE, {"paths": [str(db)]}))
    backup = backups.create_backup()

    result = verification.verify(backup.backup_id, deep=True)

    assert result.status == RunStatus.COMPLETED, result.error
    assert result.results["files"]["skipped"] is True
    assert "no restore rehearsal yet" in result.results["files"]["note"]
    assert "checksums were verified" in result.results["files"]["note"]
    assert result.results["sqlite"]["counts"] == {"app": {"notes": 7}}
    assert result.progress == {"files": "skipped", "sqlite": "done"}


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
