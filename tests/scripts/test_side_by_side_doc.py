"""docs/side-by-side.md's scenario 5, run as written: yesterday's documents table restored into a
scratch database, the deleted rows copied back, the scratch database dropped."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripts.conftest import BACKUP_ID, ROOT, clean_env
from tests.stacks import PG, pg_connect

DOC = ROOT / "docs" / "side-by-side.md"


def scenario_block():
    text = DOC.read_text()
    match = re.search(r"<!-- scenario-5 [^>]*-->\n```sh\n(.*?)```", text, re.S)
    assert match, "docs/side-by-side.md lost its scenario-5 block"
    return match.group(1)


@pytest.mark.django_db
def test_scenario_5_as_written(tmp_path, migrated_app_db, pg_database):
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, body text);"
                     "CREATE TABLE chunks (id serial PRIMARY KEY, doc int REFERENCES documents(id), n int);"
                     "INSERT INTO documents (title, body) SELECT 'doc ' || g, repeat('x', g) "
                     "FROM generate_series(1, 50) g;"
                     "INSERT INTO chunks (doc, n) SELECT 1 + g % 10, g FROM generate_series(1, 30) g")
    shutil.copy(migrated_app_db, tmp_path / "app.sqlite3")
    venv_bin = str(Path(sys.executable).parent)  # `python` in the block is the one running the tests
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite3'}", VAR_DIR=tmp_path / "var",
                    BACKUP_DIR=tmp_path / "backups", BACKUP_SPOOL_DIR=tmp_path / "spool",
                    POSTGRES_HOST=PG["host"], POSTGRES_PORT=PG["port"], POSTGRES_USER=PG["user"],
                    POSTGRES_DB=pg_database)
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
    made = subprocess.run([f"{venv_bin}/python", "manage.py", "backup", "--components", "postgres"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip().splitlines()[-1]
    assert BACKUP_ID.match(backup_id)
    with pg_connect(pg_database) as conn:  # today: rows deleted, one changed, one added
        conn.execute("DELETE FROM chunks WHERE doc IN (3, 4); DELETE FROM documents WHERE id IN (3, 4, 40)")
        conn.execute("UPDATE documents SET title = 'edited today' WHERE id = 5")
        conn.execute("INSERT INTO documents (title) VALUES ('added today')")

    scratch = f"{pg_database}_scratch"  # the doc's name, made unique for the test
    script = scenario_block().replace("scratch_documents", scratch)
    try:
        ran = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True,
                             env={**env, "BACKUP_ID": backup_id}, timeout=300)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    finally:
        with pg_connect("postgres") as conn:
            left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [scratch]).fetchone()
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    assert left is None  # step 4 dropped it
    # step 1: the plan names the target (a refused plan would have stopped the script)
    target = rf"^postgres .*side by side: tables documents into database {scratch} "
    assert re.search(target, ran.stdout, re.M), ran.stdout[:2000]
    with pg_connect(pg_database) as conn:
        rows = dict(conn.execute("SELECT id, title FROM documents").fetchall())
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert sorted(rows) == list(range(1, 52))  # 3, 4 and 40 are back, 51 stays
    assert rows[3] == "doc 3" and rows[40] == "doc 40" and rows[5] == "edited today" and rows[51] == "added today"
    assert chunks == 24  # the other tables were not touched
