"""The management commands end to end through call_command (same process, real components)."""

import io
import json
import re
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from backups_app.formatting import human_size
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
    plan = json.loads(run("restore", "latest", "--dry-run", "--json")[0])
    assert plan["ok"] and plan["affected"] == {"uploads.files": 1, "uploads.bytes": 7}
    assert (uploads / "doc.txt").read_text() == "changed" and not Restore.objects.exists()


def test_restore_dry_run_prints_the_plan_table(uploads):
    backup_id = run("backup")[0].split()[-1]
    (uploads / "doc.txt").write_text("changed, and longer")
    (uploads / "new.txt").write_text("new")
    lines = run("restore", "latest", "--dry-run")[0].splitlines()
    assert lines[0] == f"Restore plan for {backup_id} (≠: the live data differs from the backup)"
    assert [re.split(r"\s{2,}", line) for line in lines[2:5]] == [
        ["COMPONENT", "WHAT", "IN BACKUP", "LIVE NOW", "WHAT HAPPENS"],
        ["uploads", "bytes", "8 B", "22 B", "≠", "replaced from the backup; a safety backup is taken first"],
        ["", "files", "1", "2", "≠"]]
    assert re.split(r"\s{2,}", lines[6]) == ["ARTIFACT", "SIZE", "CHECKSUM"]
    assert re.split(r"\s{2,}", lines[7])[2] == "✔ verified"
    assert lines[-1] == "⚠ This will overwrite existing data: uploads."
    assert not Restore.objects.exists()


def test_listbackups_has_a_header_and_a_date_column(uploads):
    assert run("listbackups")[0].strip() == "No backups yet."
    first = run("backup", "--description", "before the upgrade")[0].split()[-1]
    second = run("backup")[0].split()[-1]
    Backup.objects.filter(backup_id=first).update(created_at=datetime(2026, 2, 4, 12, 0, tzinfo=UTC))
    lines = run("listbackups")[0].splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["BACKUP ID", "CREATED", "STATUS", "SIZE", "COMPONENTS", "DESCRIPTION"]
    newest, oldest = (re.split(r"\s{2,}", line) for line in lines[1:])
    assert newest[0] == second and newest[2:5] == ["completed", human_size(Backup.objects.get(backup_id=second)
                                                                            .size_bytes), "uploads"]
    assert oldest == [first, "2026-02-04 12:00:00 UTC", "completed", newest[3], "uploads", "before the upgrade"]
    assert re.split(r"\s{2,}", run("listbackups", "--all")[0].splitlines()[0])[-1] == "KIND"


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
