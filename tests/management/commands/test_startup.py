"""What the backup commands load when they start (issue 14: start-up time): a backup, a verification
or a restore of files never imports the vector, S3-client or API stacks, nor our admin's modules,
and still runs the project's system checks first, so a settings mistake stops a backup before it
starts. Behaviour only; the timings are in bench/verify_speed.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: Imported only where they are used: the probes (numpy), the API (ninja, pydantic), the stores, and
#: our admin's modules (loaded with the URLconf: SimpleAdminConfig).
HEAVY = ("numpy", "ninja", "pydantic", "qdrant_client", "httpx", "chromadb", "boto3", "backups_app.admin")
#: manage.py run in this process, then the heavy modules it imported printed last on stderr.
RUN_MANAGE = f"""
import atexit, runpy, sys
atexit.register(lambda: print("imported:", sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))
sys.argv = ["manage.py", *sys.argv[1:]]
runpy.run_path("manage.py", run_name="__main__")
"""


def manage(env, *args):
    """Run ``manage.py args`` (system checks included, as from a shell): (exit code, stdout, the heavy
    modules it imported, stderr)."""
    done = subprocess.run([sys.executable, "-c", RUN_MANAGE, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    last = done.stderr.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("imported: "), done.stderr
    return done.returncode, done.stdout, last.removeprefix("imported: "), done.stderr


@pytest.fixture
def site(tmp_path):
    """The environment of a deployment backing up one uploads folder into a local folder, its app
    database migrated."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "report.txt").write_text("quarterly figures\n")
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(VAR_DIR=str(tmp_path / "var"), BACKUP_DIR=str(tmp_path / "backups"), UPLOADS_DIR=str(uploads),
               BACKUP_SIGNING_KEY="k" * 40)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return env


def test_backup_verify_and_restore_import_no_heavy_stack(site):
    status, backup_id, imported, stderr = manage(site, "backup")
    assert status == 0, stderr
    assert imported == "[]", "backup"
    # Stores this backup does not hold, configured now: the checks load their modules, not their clients.
    site.update(QDRANT_URL="http://127.0.0.1:9", OBJECTS_S3_BUCKETS="media", CHROMA_PATH=site["VAR_DIR"] + "/chroma")
    for args in (("verifybackup", backup_id.strip()), ("restore", backup_id.strip(), "--dry-run",
                                                       "--components", "uploads"),
                 ("listbackups",), ("verifybackup", "--help")):
        status, out, imported, stderr = manage(site, *args)
        assert status == 0, stderr
        assert imported == "[]", args
    assert "all artifacts verified" in manage(site, "verifybackup", "latest")[1]


def test_check_still_runs_the_admin_and_url_checks(site):
    """`manage.py check` runs every check, Django's included: the URL checks load the API."""
    status, _out, imported, stderr = manage(site, "check")
    assert status == 0, stderr
    assert "ninja" in imported and "backups_app.admin" in imported  # the admin's checks run on our admins


def test_a_settings_error_stops_a_backup_before_it_starts(site):
    site["BACKUP_HOOKS"] = "{not json"
    status, out, _imported, stderr = manage(site, "backup")
    assert status != 0 and out == ""
    assert "(backups.E004) BACKUP_HOOKS is not valid JSON" in stderr
    assert not (Path(site["BACKUP_DIR"])).exists() or not any(Path(site["BACKUP_DIR"]).iterdir())
