"""scripts/backup/backup.sh and restore.sh end to end: the real scripts run in a subprocess
against a demo configuration in a temporary folder (SQLite app database, a SQLite source with FK
data, an uploads folder, and a fresh PostgreSQL database on the real server)."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import PG, pg_connect

ROOT = Path(__file__).resolve().parents[2]
BACKUP_SH = ROOT / "scripts" / "backup" / "backup.sh"
RESTORE_SH = ROOT / "scripts" / "backup" / "restore.sh"
BACKUP_ID = re.compile(r"^backup_\d{8}_\d{6}(_\d+)?$")
RESTORE_ID = re.compile(r"^restore_\d{8}_\d{6}(_\d+)?$")
# Only these pass from the caller: its app configuration must not leak into the demo one.
PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k in PASSED}
    return {**env, **{k: str(v) for k, v in extra.items()}}


def run(script, *args, env):
    """Run a script like an operator would from cron: no terminal on stdin."""
    return subprocess.run([str(script), *map(str, args)], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def backup(*args, env):
    """Run backup.sh; it must succeed and print the backup id as its last line."""
    result = run(BACKUP_SH, *args, env=env)
    assert result.returncode == 0, result.stderr
    backup_id = result.stdout.strip().splitlines()[-1]
    assert BACKUP_ID.match(backup_id), result.stdout
    return backup_id


@pytest.fixture(scope="session")
def migrated_app_db(tmp_path_factory):
    """One migrated app database, copied by every test (migrating each time is slow)."""
    folder = tmp_path_factory.mktemp("appdb")
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], check=True,
                   env=clean_env(DATABASE_URL=f"sqlite:///{folder / 'app.sqlite3'}", VAR_DIR=folder / "var"))
    return folder / "app.sqlite3"


class Stack:
    """The demo data the scripts back up, and the environment that configures them."""

    def __init__(self, root, app_db, pg_db=None):
        self.root = root
        self.sqlite = root / "data" / "docs.sqlite3"
        self.uploads = root / "uploads"
        self.backup_dir = root / "backups"
        self.pg_db = pg_db
        self.env = clean_env(DATABASE_URL=f"sqlite:///{app_db}", VAR_DIR=root / "var", BACKUP_DIR=self.backup_dir,
                             BACKUP_SPOOL_DIR=root / "spool", SQLITE_PATHS=self.sqlite, UPLOADS_DIR=self.uploads)
        if pg_db:
            self.env.update(POSTGRES_HOST=PG["host"], POSTGRES_PORT=str(PG["port"]), POSTGRES_USER=PG["user"],
                            POSTGRES_DB=pg_db)
        self._create()

    def _create(self):
        self.sqlite.parent.mkdir()
        with closing(sqlite3.connect(self.sqlite)) as conn, conn:
            conn.executescript("""
                PRAGMA foreign_keys = ON;
                CREATE TABLE documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
                CREATE TABLE chunks (id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL REFERENCES documents(id),
                                     body TEXT);
            """)
            conn.executemany("INSERT INTO documents VALUES (?, ?)", [(i, f"문서 {i} ✓") for i in range(1, 21)])
            conn.executemany("INSERT INTO chunks (document_id, body) VALUES (?, ?)",
                             [(1 + i % 20, f"chunk {i}") for i in range(200)])
        (self.uploads / "docs" / "보고서").mkdir(parents=True)
        (self.uploads / "docs" / "보고서" / "요약 ✓.txt").write_text("요약\n" * 100, encoding="utf-8")
        (self.uploads / "docs" / "big.bin").write_bytes(os.urandom(300_000))
        (self.uploads / "empty.txt").write_bytes(b"")
        if self.pg_db:
            with pg_connect(self.pg_db) as conn:
                conn.execute("""
                    CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL);
                    CREATE TABLE notes (id bigserial PRIMARY KEY, author_id int REFERENCES authors(id),
                                        meta jsonb, blob bytea);
                    INSERT INTO authors (name) VALUES ('Ada'), ('김민지');
                    INSERT INTO notes (author_id, meta, blob)
                        SELECT 1 + i % 2, jsonb_build_object('i', i), decode(md5(i::text), 'hex')
                        FROM generate_series(1, 300) i;
                """)

    def snapshot(self):
        with closing(sqlite3.connect(self.sqlite)) as conn:
            data = {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in ("documents", "chunks")}
        data["uploads"] = {str(p.relative_to(self.uploads)): p.read_bytes() if p.is_file() else None
                           for p in sorted(self.uploads.rglob("*"))}
        if self.pg_db:
            with pg_connect(self.pg_db) as conn:
                for table in ("authors", "notes"):
                    exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0]
                    data[table] = exists and conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        return data

    def mutate(self):
        with closing(sqlite3.connect(self.sqlite)) as conn, conn:
            conn.execute("DELETE FROM chunks WHERE id % 3 = 0")
            conn.execute("UPDATE documents SET title = 'changed' WHERE id < 5")
            conn.execute("INSERT INTO documents (title) VALUES ('new')")
        (self.uploads / "docs" / "big.bin").write_bytes(b"overwritten")
        (self.uploads / "empty.txt").unlink()
        (self.uploads / "added.txt").write_text("added")
        if self.pg_db:
            with pg_connect(self.pg_db) as conn:
                conn.execute("DELETE FROM notes WHERE id % 2 = 0; DROP TABLE authors CASCADE")

    def backup(self, *args):
        return backup(*args, env=self.env)


@pytest.fixture
def stack(tmp_path, migrated_app_db):
    shutil.copy(migrated_app_db, tmp_path / "app.sqlite3")
    return Stack(tmp_path, tmp_path / "app.sqlite3")


@pytest.fixture
def pg_stack(tmp_path, migrated_app_db, pg_database):
    shutil.copy(migrated_app_db, tmp_path / "app.sqlite3")
    return Stack(tmp_path, tmp_path / "app.sqlite3", pg_db=pg_database)


def test_backup_then_restore_latest_force_brings_every_component_back(pg_stack):
    before = pg_stack.snapshot()
    backup_id = pg_stack.backup("--description", "nightly run")
    folder = pg_stack.backup_dir / backup_id
    assert {"metadata.json", "SHA256SUMS", "postgres.dump", "sqlite_docs.db"} <= set(os.listdir(folder))
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder, check=True)
    manifest = json.loads((folder / "metadata.json").read_text())
    assert manifest["description"] == "nightly run"
    assert set(manifest["components"]) == {"postgres", "uploads", "sqlite"}

    pg_stack.mutate()
    assert pg_stack.snapshot() != before
    result = run(RESTORE_SH, "latest", "--force", env=pg_stack.env)
    assert result.returncode == 0, result.stderr
    assert RESTORE_ID.match(result.stdout.strip().splitlines()[-1])
    assert pg_stack.snapshot() == before


def test_component_restore_touches_only_that_component(stack):
    backup_id = stack.backup("--component", "sqlite", "--component", "uploads")
    before = stack.snapshot()
    stack.mutate()
    mutated = stack.snapshot()
    result = run(RESTORE_SH, "--component", "sqlite", "--yes", backup_id, env=stack.env)
    assert result.returncode == 0, result.stderr
    after = stack.snapshot()
    assert (after["documents"], after["chunks"]) == (before["documents"], before["chunks"])
    assert after["uploads"] == mutated["uploads"]


def test_restore_without_force_and_without_a_terminal_refuses(stack):
    stack.backup()
    stack.mutate()
    mutated = stack.snapshot()
    result = run(RESTORE_SH, "latest", env=stack.env)
    assert result.returncode != 0
    assert "Confirmation required: pass --yes" in result.stderr
    assert "This will overwrite existing data" in result.stderr
    assert stack.snapshot() == mutated


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


def test_restore_on_a_terminal_asks_for_the_backup_id(stack):
    backup_id = stack.backup()
    before = stack.snapshot()
    stack.mutate()
    mutated = stack.snapshot()

    result = run_on_terminal(RESTORE_SH, "latest", env=stack.env, typed="backup_19990101_000000")
    assert result.returncode == 1 and "Not confirmed; nothing was changed." in result.stderr
    assert stack.snapshot() == mutated

    result = run_on_terminal(RESTORE_SH, "latest", env=stack.env, typed=backup_id)
    assert result.returncode == 0, result.stderr
    assert f"Type the backup id ({backup_id}) to restore" in result.stdout
    assert stack.snapshot() == before


def test_dry_run_verifies_and_changes_nothing(stack):
    backup_id = stack.backup()
    stack.mutate()
    mutated = stack.snapshot()
    result = run(RESTORE_SH, "--dry-run", "--component", "uploads", "--component", "sqlite", "latest", env=stack.env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["backup_id"] == backup_id and plan["components"] == ["uploads", "sqlite"]
    assert plan["ok"] and all(a["verified"] for a in plan["artifacts"].values())
    assert plan["counts"]["sqlite"]["backup"]["docs"]["chunks"] == 200
    assert stack.snapshot() == mutated

    # A damaged artifact: the dry run says so and fails; a forced restore refuses to start.
    with open(stack.backup_dir / backup_id / "sqlite_docs.db", "r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    result = run(RESTORE_SH, "--dry-run", backup_id, env=stack.env)
    assert result.returncode != 0
    assert "sqlite_docs.db does not match its manifest" in result.stderr
    result = run(RESTORE_SH, "--force", backup_id, env=stack.env)
    assert result.returncode != 0
    assert "Restore refused before any change" in result.stderr
    assert stack.snapshot() == mutated


def test_restore_accepts_the_backup_folder_only_inside_backup_dir(stack, tmp_path):
    backup_id = stack.backup()
    result = run(RESTORE_SH, "--dry-run", f"{stack.backup_dir}/{backup_id}/", env=stack.env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backup_id"] == backup_id

    elsewhere = tmp_path / "copy" / backup_id
    shutil.copytree(stack.backup_dir / backup_id, elsewhere)
    result = run(RESTORE_SH, "--force", elsewhere, env=stack.env)
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
def test_restore_bad_arguments_are_clear_errors(stack, args, code, message):
    before = stack.snapshot()
    result = run(RESTORE_SH, "--force", *args, env=stack.env)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert stack.snapshot() == before


def test_backup_failures_exit_non_zero_with_the_reason(stack):
    result = run(BACKUP_SH, "--component", "qdrant", env=stack.env)
    assert result.returncode == 1
    assert "Unknown component(s) 'qdrant'. Configured components: uploads, sqlite" in result.stderr

    shutil.rmtree(stack.uploads)
    result = run(BACKUP_SH, env=stack.env)
    assert result.returncode == 1
    assert "does not exist (check UPLOADS_DIR)" in result.stderr
    assert not stack.backup_dir.exists() or os.listdir(stack.backup_dir) == []

    result = run(BACKUP_SH, "--descripton", "x", env=stack.env)
    assert result.returncode == 2 and "Unknown argument: --descripton" in result.stderr


def test_config_file_is_read_as_data_and_the_environment_wins(stack, tmp_path):
    marker = tmp_path / "executed"
    config = tmp_path / "backup.env"
    config.write_text(
        "# sources for the nightly job\n"
        f"SQLITE_PATHS={stack.sqlite}\n"
        f"export UPLOADS_DIR=\"{stack.uploads}\"\n"
        f"BACKUP_DIR={tmp_path / 'not-used'}\n"
        f"DJANGO_SECRET_KEY=$(touch {marker})\n"
        "\n"
        "BACKUP_HOOKS='{\"post_backup\": [{\"command\": [\"true\"], \"on_error\": \"fail\"}]}'\n"
    )
    env = {k: v for k, v in stack.env.items() if k not in ("SQLITE_PATHS", "UPLOADS_DIR")}
    backup_id = backup(env={**env, "BACKUP_CONFIG": str(config)})
    manifest = json.loads((stack.backup_dir / backup_id / "metadata.json").read_text())
    assert set(manifest["components"]) == {"sqlite", "uploads"}  # not the demo stack: the file was read
    assert not (tmp_path / "not-used").exists()  # BACKUP_DIR from the environment won
    assert not marker.exists()  # nothing in the file was executed

    config.write_text("# credentials\nPOSTGRES_PASSWORD s3cret-value\n")
    result = run(BACKUP_SH, env={**env, "BACKUP_CONFIG": str(config)})
    assert result.returncode == 2 and f"{config}:2: expected NAME=VALUE" in result.stderr
    assert "s3cret-value" not in result.stderr
    result = run(BACKUP_SH, env={**env, "BACKUP_CONFIG": str(tmp_path / "missing.env")})
    assert result.returncode == 2 and "missing.env: no such file" in result.stderr
