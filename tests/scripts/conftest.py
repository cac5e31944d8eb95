"""The scripts' test setup: an environment that passes nothing of the caller's configuration, a
migrated app database copied by every test, and tests/stacks.py's ScriptStack configured the way
the scripts read it (BACKUP_DIR, the sources' variables)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import stacks

ROOT = Path(__file__).resolve().parents[2]
BACKUP_SH = ROOT / "scripts" / "backup" / "backup.sh"
RESTORE_SH = ROOT / "scripts" / "backup" / "restore.sh"
BACKUP_ID = re.compile(r"^backup_\d{8}_\d{6}(_\d+)?$")
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


class ConfiguredStack(stacks.ScriptStack):
    """The demo data the scripts back up, and the environment that configures them."""

    def __init__(self, root, app_db, pg_db=None):
        super().__init__(root, pg_db)
        self.backup_dir = root / "backups"
        self.env = clean_env(DATABASE_URL=f"sqlite:///{app_db}", VAR_DIR=root / "var", BACKUP_DIR=self.backup_dir,
                             BACKUP_SPOOL_DIR=root / "spool", **stacks.environment(self.options))

    def backup(self, *args):
        return backup(*args, env=self.env)


@pytest.fixture
def script_stack(tmp_path, migrated_app_db):
    """Uploads and SQLite (stacks.ScriptStack) configured for the scripts."""
    shutil.copy(migrated_app_db, tmp_path / "app.sqlite3")
    return ConfiguredStack(tmp_path, tmp_path / "app.sqlite3")


@pytest.fixture
def script_pg_stack(tmp_path, migrated_app_db, pg_database):
    """ScriptStack with its PostgreSQL database too, configured for the scripts."""
    shutil.copy(migrated_app_db, tmp_path / "app.sqlite3")
    return ConfiguredStack(tmp_path, tmp_path / "app.sqlite3", pg_db=pg_database)
