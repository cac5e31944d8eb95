"""The management commands end to end through call_command (same process, real components)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from backups_app.models import Backup, Restore, RunStatus
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db


def run(*args, stdin=None, monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_backup_prints_id_last_and_listbackups_shows_it(uploads):
    out, _ = run("backup", "--description", "cli run")
    backup_id = out.strip().splitlines()[-1]
    assert Backup.objects.get(backup_id=backup_id).status == RunStatus.COMPLETED
    listed = json.loads(run("listbackups", "--json")[0])
    assert listed[0]["backup_id"] == backup_id and listed[0]["description"] == "cli run"
    assert backup_id in run("listbackups")[0]


def test_verifybackup_ok_and_damaged(uploads, backup_storage_dir):
    backup_id = run("backup")[0].split()[-1]
    assert "all artifacts verified" in run("verifybackup", "latest")[0]
    (backup_storage_dir / backup_id / "uploads.tar.zst").write_bytes(b"x")
    with pytest.raises(CommandError, match="failed verification"):
        run("verifybackup", backup_id)


def test_restore_with_yes_and_latest(uploads):
    run("backup")
    (uploads / "doc.txt").write_text("changed")
    out, _ = run("restore", "latest", "--yes")
    assert Restore.objects.get(restore_id=out.split()[-1]).status == RunStatus.COMPLETED
    assert (uploads / "doc.txt").read_text() == "original"


def test_restore_without_yes_and_without_terminal_refuses(uploads, monkeypatch):
    run("backup")
    (uploads / "doc.txt").write_text("changed")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="Confirmation required: pass --yes"):
        run("restore", "latest")
    assert (uploads / "doc.txt").read_text() == "changed"
    assert not Restore.objects.exists()


def test_restore_dry_run_changes_nothing(uploads):
    run("backup")
    (uploads / "doc.txt").write_text("changed")
    plan = json.loads(run("restore", "latest", "--dry-run")[0])
    assert plan["ok"] and plan["affected"] == {"uploads.files": 1, "uploads.bytes": 7}
    assert (uploads / "doc.txt").read_text() == "changed" and not Restore.objects.exists()


@pytest.mark.parametrize("args,message", [
    (["restore", "../../etc", "--yes"], "Invalid backup id"),
    (["restore", "backup_20990101_000000", "--yes"], "does not exist"),
    (["backup", "--components", "qdrant"], "Unknown component(s) 'qdrant'"),
    (["restore", "latest", "--yes", "--set", "uploads"], "expected COMPONENT.KEY=VALUE"),
])
def test_bad_input_gives_a_clear_error(uploads, args, message):
    run("backup")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(*args)


def test_failed_backup_exits_non_zero(sources, tmp_path):
    sources(uploads=(ENGINES["uploads"], {"path": str(tmp_path / "missing")}))
    with pytest.raises(CommandError, match="does not exist \\(check UPLOADS_DIR\\)"):
        run("backup")
    assert Backup.objects.get().status == RunStatus.FAILED
