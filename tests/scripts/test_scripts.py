"""scripts/backup/backup.sh and restore.sh end to end: the real scripts run in a subprocess
against a demo configuration in a temporary folder (SQLite app database, a SQLite source with FK
data, an uploads folder, and a fresh PostgreSQL database on the real server)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.scripts.conftest import BACKUP_SH, RESTORE_SH, ROOT, backup, run

RESTORE_ID = re.compile(r"^restore_\d{8}_\d{6}(_\d+)?$")


def test_backup_then_restore_latest_force_brings_every_component_back(script_pg_stack):
    before = script_pg_stack.snapshot()
    backup_id = script_pg_stack.backup("--description", "nightly run")
    folder = script_pg_stack.backup_dir / backup_id
    assert {"metadata.json", "SHA256SUMS", "postgres.dump", "sqlite_docs.db"} <= set(os.listdir(folder))
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder, check=True)
    manifest = json.loads((folder / "metadata.json").read_text())
    assert manifest["description"] == "nightly run"
    assert set(manifest["components"]) == {"postgres", "uploads", "sqlite"}

    script_pg_stack.mutate()
    assert script_pg_stack.snapshot() != before
    result = run(RESTORE_SH, "latest", "--force", env=script_pg_stack.env)
    assert result.returncode == 0, result.stderr
    assert RESTORE_ID.match(result.stdout.strip().splitlines()[-1])
    assert script_pg_stack.snapshot() == before


def test_component_restore_touches_only_that_component(script_stack):
    backup_id = script_stack.backup("--component", "sqlite", "--component", "uploads")
    before = script_stack.snapshot()
    script_stack.mutate()
    mutated = script_stack.snapshot()
    result = run(RESTORE_SH, "--component", "sqlite", "--yes", backup_id, env=script_stack.env)
    assert result.returncode == 0, result.stderr
    after = script_stack.snapshot()
    assert (after["documents"], after["chunks"]) == (before["documents"], before["chunks"])
    assert after["uploads"] == mutated["uploads"]


def test_restore_without_force_and_without_a_terminal_refuses(script_stack):
    script_stack.backup()
    script_stack.mutate()
    mutated = script_stack.snapshot()
    result = run(RESTORE_SH, "latest", env=script_stack.env)
    assert result.returncode != 0
    assert "Confirmation required: pass --yes" in result.stderr
    assert "This will overwrite existing data" in result.stderr
    assert script_stack.snapshot() == mutated


def run_on_terminal(script, *args, env, typed):
    """Run a script with a terminal on stdin where ``typed`` has been typed."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, typed.encode() + b"\n")
        return subprocess.run([str(script), *args], env=env, stdin=terminal, capture_output=True, text=True,
                              timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)


def test_restore_on_a_terminal_asks_for_the_backup_id(script_stack):
    backup_id = script_stack.backup()
    before = script_stack.snapshot()
    script_stack.mutate()
    mutated = script_stack.snapshot()

    result = run_on_terminal(RESTORE_SH, "latest", env=script_stack.env, typed="backup_19990101_000000")
    assert result.returncode == 1 and "Not confirmed; nothing was changed." in result.stderr
    assert script_stack.snapshot() == mutated

    result = run_on_terminal(RESTORE_SH, "latest", env=script_stack.env, typed=backup_id)
    assert result.returncode == 0, result.stderr
    assert f"Type the backup id ({backup_id}) to restore" in result.stdout
    assert script_stack.snapshot() == before


def test_dry_run_verifies_and_changes_nothing(script_stack):
    backup_id = script_stack.backup()
    script_stack.mutate()
    mutated = script_stack.snapshot()
    result = run(RESTORE_SH, "--dry-run", "--json", "--component", "uploads", "--component", "sqlite", "latest",
                 env=script_stack.env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["backup_id"] == backup_id and plan["components"] == ["uploads", "sqlite"]
    assert plan["ok"] and all(a["verified"] for a in plan["artifacts"].values())
    assert plan["counts"]["sqlite"]["backup"]["docs"]["chunks"] == 200
    assert script_stack.snapshot() == mutated

    # A damaged artifact: the dry run says so and fails; a forced restore refuses to start.
    with open(script_stack.backup_dir / backup_id / "sqlite_docs.db", "r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    result = run(RESTORE_SH, "--dry-run", backup_id, env=script_stack.env)
    assert result.returncode != 0
    assert "sqlite_docs.db does not match its manifest" in result.stderr
    result = run(RESTORE_SH, "--force", backup_id, env=script_stack.env)
    assert result.returncode != 0
    assert "Restore refused before any change" in result.stderr
    assert script_stack.snapshot() == mutated


def test_dry_run_prints_the_plan_table_of_manage_py_restore(script_stack):
    """restore.sh --dry-run and manage.py restore --dry-run print the same table: per component
    what happens, the counts in the backup vs live now, ≠ where they differ."""
    backup_id = script_stack.backup()
    script_stack.mutate()
    table = run(RESTORE_SH, "--dry-run", "latest", env=script_stack.env)
    assert table.returncode == 0, table.stderr
    manage = subprocess.run([sys.executable, str(ROOT / "manage.py"), "restore", "--dry-run", backup_id],
                            env=script_stack.env, capture_output=True, text=True, timeout=120)
    assert manage.returncode == 0, manage.stderr
    assert table.stdout == manage.stdout
    lines = table.stdout.splitlines()
    assert lines[0] == f"Restore plan for {backup_id} (≠: the live data differs from the backup)"
    assert re.split(r"\s{2,}", lines[2]) == ["COMPONENT", "WHAT", "IN BACKUP", "LIVE NOW", "WHAT HAPPENS"]
    rows = [re.split(r"\s{2,}", line) for line in lines[3:8]]
    # mutate() overwrote big.bin (300 kB), removed one file and added one, deleted 66 chunks, added a document.
    replaced = "replaced from the backup; a safety backup is taken first"
    assert rows == [["uploads", "bytes", "294 KiB", "716 B", "≠", replaced], ["", "files", "3", "3"],
                    ["sqlite", "docs.chunks", "200", "134", "≠", replaced], ["", "docs.documents", "20", "21", "≠"],
                    [""]]
    assert "sqlite_docs.db" in table.stdout and "✔ verified" in table.stdout
    assert "⚠ This will overwrite existing data: uploads, sqlite." in lines


def test_restore_accepts_the_backup_folder_only_inside_backup_dir(script_stack, tmp_path):
    backup_id = script_stack.backup()
    result = run(RESTORE_SH, "--dry-run", "--json", f"{script_stack.backup_dir}/{backup_id}/", env=script_stack.env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backup_id"] == backup_id

    elsewhere = tmp_path / "copy" / backup_id
    shutil.copytree(script_stack.backup_dir / backup_id, elsewhere)
    result = run(RESTORE_SH, "--force", elsewhere, env=script_stack.env)
    assert result.returncode == 2
    assert "is not a folder in BACKUP_DIR" in result.stderr


@pytest.mark.parametrize("args, code, message", [
    (["backup_2026"], 1, "Invalid backup id 'backup_2026'"),
    (["backup_20200101_000000"], 1, "Backup backup_20200101_000000 does not exist"),
    (["latest"], 1, "There is no completed backup yet"),
    (["../../etc/passwd"], 2, "is not a folder in BACKUP_DIR"),
    ([], 2, "Which backup? Pass a backup id or 'latest'"),
    (["--compnent", "sqlite", "latest"], 2, "Unknown option: --compnent"),
    (["--component"], 2, "--component needs a value"),
    (["backup_20200101_000000", "latest"], 2, "Only one backup can be restored at a time"),
])
def test_restore_bad_arguments_are_clear_errors(script_stack, args, code, message):
    before = script_stack.snapshot()
    result = run(RESTORE_SH, "--force", *args, env=script_stack.env)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert script_stack.snapshot() == before


def test_backup_failures_exit_non_zero_with_the_reason(script_stack):
    result = run(BACKUP_SH, "--component", "qdrant", env=script_stack.env)
    assert result.returncode == 1
    assert "Unknown component(s) 'qdrant'. Configured components: uploads, sqlite" in result.stderr

    shutil.rmtree(script_stack.uploads)
    result = run(BACKUP_SH, env=script_stack.env)
    assert result.returncode == 1
    assert "does not exist (check UPLOADS_DIR)" in result.stderr
    assert not script_stack.backup_dir.exists() or os.listdir(script_stack.backup_dir) == []

    result = run(BACKUP_SH, "--descripton", "x", env=script_stack.env)
    assert result.returncode == 2 and "Unknown argument: --descripton" in result.stderr


def test_config_file_is_read_as_data_and_the_environment_wins(script_stack, tmp_path):
    marker = tmp_path / "executed"
    config = tmp_path / "backup.env"
    config.write_text(
        "# sources for the nightly job\n"
        f"SQLITE_PATHS={script_stack.sqlite}\n"
        f"export UPLOADS_DIR=\"{script_stack.uploads}\"\n"
        f"BACKUP_DIR={tmp_path / 'not-used'}\n"
        f"DJANGO_SECRET_KEY=$(touch {marker})\n"
        "\n"
        "BACKUP_HOOKS='{\"post_backup\": [{\"command\": [\"true\"], \"on_error\": \"fail\"}]}'\n"
    )
    env = {k: v for k, v in script_stack.env.items() if k not in ("SQLITE_PATHS", "UPLOADS_DIR")}
    backup_id = backup(env={**env, "BACKUP_CONFIG": str(config)})
    manifest = json.loads((script_stack.backup_dir / backup_id / "metadata.json").read_text())
    assert set(manifest["components"]) == {"sqlite", "uploads"}  # not the demo stack: the file was read
    assert not (tmp_path / "not-used").exists()  # BACKUP_DIR from the environment won
    assert not marker.exists()  # nothing in the file was executed

    config.write_text("# credentials\nPOSTGRES_PASSWORD s3cret-value\n")
    result = run(BACKUP_SH, env={**env, "BACKUP_CONFIG": str(config)})
    assert result.returncode == 2 and f"{config}:2: expected NAME=VALUE" in result.stderr
    assert "s3cret-value" not in result.stderr
    result = run(BACKUP_SH, env={**env, "BACKUP_CONFIG": str(tmp_path / "missing.env")})
    assert result.returncode == 2 and "missing.env: no such file" in result.stderr
