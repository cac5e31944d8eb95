"""Settings read from the environment never fail at import: a bad value is a one-line system
check error naming the variable and the fix, and the runs that need it refuse clearly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backupsite.env import Environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("variables, expected", [
    ({"BACKUP_STALE_SECONDS": "abc"}, "(backups.E020) BACKUP_STALE_SECONDS='abc': use a whole number; using 300"),
    ({"BACKUP_STORAGE": "s3", "BACKUP_S3_BUCKET": "b", "BACKUP_S3_PART_MB": "3"},
     "(backups.E020) BACKUP_S3_PART_MB='3': use a whole number of MB from 5 to 5120"),
    ({"BACKUP_KEEP_SAFETY": "maybe"}, "(backups.E020) BACKUP_KEEP_SAFETY='maybe' is not true or false"),
    ({"BACKUP_HOOKS": "{not json"}, "(backups.E004) BACKUP_HOOKS is not valid JSON"),
    ({"POSTGRES_DB": "app", "POSTGRES_PORT": "abc"},
     "(backups.E001) BACKUP_SOURCES['postgres']['OPTIONS']: option 'port' (POSTGRES_PORT): expected a whole number"),
])
def test_a_bad_variable_is_a_check_error_not_a_traceback(tmp_path, variables, expected):
    env = {**os.environ, "VAR_DIR": str(tmp_path), "BACKUP_DIR": str(tmp_path / "backups"), **variables}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert expected in done.stderr, done.stderr


def test_environment_reader_keeps_the_default_and_the_problem():
    env = Environment({"N": "12", "BAD": "x", "EMPTY": "", "FLAG": "yes", "LIST": " a, ,b "})
    assert (env.int("N", 1), env.int("BAD", 7), env.int("EMPTY", 3), env.int("MISSING", 4)) == (12, 7, 3, 4)
    assert env.bool("FLAG") is True and env.list("LIST") == ["a", "b"] and env.str("EMPTY", "d") == "d"
    assert env.int("N", 1, low=20, high=30) == 1
    assert env.problems == ["BAD='x': use a whole number; using 7 until it is fixed.",
                            "N='12': use a whole number from 20 to 30; using 1 until it is fixed."]
