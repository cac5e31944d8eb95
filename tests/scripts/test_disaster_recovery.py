"""Seed 002 scenario 4 as docs/disaster-recovery.md tells it: the server is lost with its app
database, its stores, its roles and its primary backups; the offsite copy (moto's S3 server)
survives. A new server with the same configuration, age identity and BACKUP_SIGNING_KEY runs
`restore.sh --force latest` and gets rows, owners, grants and files back exactly; the by-hand
path of the same document, run as written, does too."""

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from pyrage import x25519

from tests.conftest import S3_TEST_KEYS, new_bucket
from tests.scripts.conftest import RESTORE_SH, ConfiguredStack, clean_env, run
from tests.stacks import pg_connect

DOC = Path(__file__).resolve().parents[2] / "docs" / "disaster-recovery.md"


@pytest.fixture
def app_roles(pg_database):
    """Two roles of the application's own, dropped at the end with the database they own:
    (owner, reader)."""
    suffix = uuid.uuid4().hex[:8]
    owner, reader = f"app_owner_{suffix}", f"app_reader_{suffix}"
    with pg_connect("postgres") as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN CONNECTION LIMIT 7; CREATE ROLE "{reader}" NOLOGIN')
    yield owner, reader
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)')
        for role in (owner, reader):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def drop_database_and_roles(dbname, roles):
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        for role in roles:
            conn.execute(f'DROP ROLE "{role}"')


def ownership(dbname, reader, roles):
    with pg_connect(dbname) as conn:
        return conn.execute("""
            SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
                   array_agg(c.relname || ':' || pg_get_userbyid(c.relowner) ORDER BY c.relname),
                   bool_and(has_table_privilege(%s, c.oid, 'SELECT')),
                   (SELECT array_agg(rolname || ':' || rolcanlogin || ':' || rolconnlimit ORDER BY rolname)
                    FROM pg_roles WHERE rolname = ANY(%s))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'""", [reader, list(roles)]).fetchone()


@pytest.fixture
def doomed_server(tmp_path, migrated_app_db, pg_database, app_roles):
    """The old server: a database owned by an application role, with a second role granted SELECT,
    uploads and SQLite, configured with an age identity and BACKUP_SIGNING_KEY."""
    owner, reader = app_roles
    with pg_connect(pg_database) as conn:
        conn.execute(f'ALTER DATABASE "{pg_database}" OWNER TO "{owner}"; GRANT USAGE ON SCHEMA public TO "{owner}"; '
                     f'GRANT CREATE ON SCHEMA public TO "{owner}"')
    shutil.copy(migrated_app_db, tmp_path / "app.sqlite3")
    stack = ConfiguredStack(tmp_path, tmp_path / "app.sqlite3", pg_db=pg_database)
    with pg_connect(pg_database) as conn:
        conn.execute(f'ALTER TABLE authors OWNER TO "{owner}"; ALTER TABLE notes OWNER TO "{owner}"; '
                     f'GRANT SELECT ON authors, notes TO "{reader}"')
    identity = x25519.Identity.generate()
    stack.key_file = tmp_path / "age-key.txt"
    stack.key_file.write_text(f"{identity}\n")
    stack.key_file.chmod(0o600)
    stack.env.update(BACKUP_AGE_RECIPIENTS=str(identity.to_public()), BACKUP_AGE_IDENTITY_FILE=str(stack.key_file),
                     BACKUP_SIGNING_KEY="a-long-random-signing-key-kept-with-the-age-identity")
    stack.before, stack.owners = stack.snapshot(), ownership(pg_database, reader, app_roles)
    assert stack.owners[0] == owner and stack.owners[1] == [f"authors:{owner}", f"notes:{owner}"] and stack.owners[2]
    assert stack.owners[3] == sorted([f"{owner}:true:7", f"{reader}:false:-1"])
    return stack


def test_a_new_server_restores_everything_from_the_offsite_copy(tmp_path, migrated_app_db, doomed_server, app_roles,
                                                                 moto_endpoint):
    stack = doomed_server
    stack.env.update({"BACKUP_OFFSITE_STORAGE": "s3", "BACKUP_OFFSITE_S3_BUCKET": new_bucket(moto_endpoint),
                      "BACKUP_OFFSITE_S3_ENDPOINT_URL": moto_endpoint,
                      **{k.replace("BACKUP_", "BACKUP_OFFSITE_", 1): v for k, v in S3_TEST_KEYS.items()}})
    stack.backup("--description", "before the fire")

    # The fire: the stores, the roles, the primary backups and the app database are gone.
    drop_database_and_roles(stack.pg_db, app_roles)
    shutil.rmtree(stack.backup_dir)
    shutil.rmtree(stack.uploads)
    stack.sqlite.unlink()
    new_app_db = tmp_path / "new-server.sqlite3"
    shutil.copy(migrated_app_db, new_app_db)
    stack.env["DATABASE_URL"] = f"sqlite:///{new_app_db}"

    result = run(RESTORE_SH, "--force", "latest", env=stack.env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.snapshot() == stack.before
    assert ownership(stack.pg_db, app_roles[1], app_roles) == stack.owners


def by_hand_steps(uploads):
    """The shell block of docs/disaster-recovery.md's "By hand" section from step 2 on (step 1
    fetches the set from S3; here it is on local disk already), with the uploads folder given."""
    text = DOC.read_text()
    block = text[text.index("## By hand"):].split("```bash\n", 1)[1].split("```", 1)[0]
    return block[block.index("# 2."):].replace("/srv/app/uploads", str(uploads))


def test_the_by_hand_path_runs_as_written(doomed_server, app_roles):
    stack = doomed_server
    backup_id = stack.backup()
    drop_database_and_roles(stack.pg_db, app_roles)
    shutil.rmtree(stack.uploads)
    folder = stack.backup_dir / backup_id
    shutil.copy(stack.key_file, folder / "backup-age-key.txt")
    env = {**clean_env(), "BACKUP_SIGNING_KEY": stack.env["BACKUP_SIGNING_KEY"], "POSTGRES_HOST": "127.0.0.1",
           "POSTGRES_DB": stack.pg_db}

    result = subprocess.run(["bash", "-euo", "pipefail", "-c", by_hand_steps(stack.uploads)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "signature OK" in result.stdout
    assert stack.snapshot() == stack.before
    assert ownership(stack.pg_db, app_roles[1], app_roles) == stack.owners
