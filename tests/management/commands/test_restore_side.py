"""manage.py restore with target options: the confirmation shows where each component goes and
warns of overwriting only for what is restored live."""

import io

import pytest
from django.core.management import CommandError, call_command

from backups_app.models import Restore, RunStatus

pytestmark = pytest.mark.django_db


def test_side_by_side_confirmation_and_restore(uploads, monkeypatch, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command("backup", stdout=out)
    backup_id = out.getvalue().strip().splitlines()[-1]
    target = tmp_path / "side"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="Confirmation required"):
        call_command("restore", backup_id, "--set", f"uploads.directory={target}", stdout=out, stderr=err)
    assert f"side by side: the whole folder into folder {target}; the live folder" in err.getvalue()
    assert "This will overwrite existing data" not in err.getvalue()

    out = io.StringIO()
    call_command("restore", backup_id, "--set", f"uploads.directory={target}", "--yes", stdout=out)
    restore = Restore.objects.get(restore_id=out.getvalue().strip().splitlines()[-1])
    assert restore.status == RunStatus.COMPLETED and (target / "doc.txt").read_text() == "original"
    with pytest.raises(CommandError, match="give an absolute path"):
        call_command("restore", backup_id, "--set", "uploads.directory=rel", "--yes", stdout=io.StringIO())
