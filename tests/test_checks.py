"""The system checks (backups_app/checks.py): sources (E001 bad ENGINE, E002 missing program), hooks
(E003/E004), operations settings (E010-E012, W010), the environment (E020), and the archive
storage and age settings (backups.E1xx / W1xx)."""

import pytest
from django.core.checks import run_checks
from pyrage import x25519

from backups_app.checks import check_archive_storage, check_environment
from backupsite.env import Environment
from backupsite.storage_env import storage_entry
from tests.conftest import s3_entry
from tests.stacks import ENGINES


def ids(settings_errors):
    return sorted(e.id for e in settings_errors)


def test_defaults_pass():
    assert check_archive_storage(None) == []


def test_storage_mistakes_are_named_with_hints(settings):
    settings.BACKUP_STORAGE = "ftp"
    settings.STORAGES = {**settings.STORAGES,
                         "backups": s3_entry("http://127.0.0.1:9", "", BACKUP_S3_SECRET_ACCESS_KEY=""),
                         "backups_offsite": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                             "OPTIONS": {"location": ""}}}
    settings.BACKUP_S3_PRESIGNED_DOWNLOADS = True
    errors = check_archive_storage(None)
    assert ids(errors) == ["backups.E101", "backups.E102", "backups.E104", "backups.W101"]
    assert all(e.hint for e in errors)
    settings.STORAGES = {**settings.STORAGES, "backups": s3_entry("http://127.0.0.1:9", "b",
                                                                  BACKUP_S3_SECRET_ACCESS_KEY="")}
    settings.BACKUP_STORAGE = "s3"
    assert "backups.E103" in ids(check_archive_storage(None))


def test_offsite_in_the_same_place_is_an_error(settings):
    entry = s3_entry("http://127.0.0.1:9", "same")
    settings.STORAGES = {**settings.STORAGES, "backups": entry, "backups_offsite": entry}
    settings.BACKUP_STORAGE = "s3"
    assert ids(check_archive_storage(None)) == ["backups.E105"]


def test_age_settings(settings, tmp_path):
    settings.BACKUP_AGE_RECIPIENTS = ["age1nope"]
    assert ids(check_archive_storage(None)) == ["backups.E106"]

    identity = x25519.Identity.generate()
    settings.BACKUP_AGE_RECIPIENTS = [str(identity.to_public())]
    assert ids(check_archive_storage(None)) == ["backups.W102"]  # encrypting, but no key here to restore

    key = tmp_path / "key.txt"
    key.write_text("garbage\n")
    key.chmod(0o600)
    settings.BACKUP_AGE_IDENTITY_FILE = str(key)
    assert ids(check_archive_storage(None)) == ["backups.E107"]

    key.write_text(f"{x25519.Identity.generate()}\n")
    key.chmod(0o644)
    assert ids(check_archive_storage(None)) == ["backups.W103", "backups.W104"]  # other key, readable by all

    key.write_text(f"# created by age-keygen\n{identity}\n")
    key.chmod(0o600)
    assert check_archive_storage(None) == []


def test_part_size_must_be_a_valid_s3_part_size(settings):
    for wrong in ("4", "16MB", "9000"):
        env = Environment({"BACKUP_STORAGE": "s3", "BACKUP_S3_BUCKET": "b", "BACKUP_S3_PART_MB": wrong})
        entry = storage_entry(env, "BACKUP_", None)  # never a traceback at import: the default, and a check error
        assert entry["OPTIONS"]["transfer_config"].multipart_chunksize == 8 * 1024 * 1024
        (problem,) = env.problems
        assert f"BACKUP_S3_PART_MB={wrong!r}: use a whole number of MB from 5 to 5120" in problem
        settings.BACKUP_ENVIRONMENT_PROBLEMS = env.problems
        assert [(e.id, e.msg) for e in check_environment(None)] == [("backups.E020", problem)]
    assert s3_entry("http://127.0.0.1:9", "b", BACKUP_S3_PART_MB="64")["OPTIONS"][
        "transfer_config"].multipart_chunksize == 64 * 1024 * 1024


def test_system_check_reports_bad_engine_with_id_and_hint(sources):
    sources(broken=("backups_app.components.nothing.Nope", {}))
    errors = [e for e in run_checks() if e.id == "backups.E001"]
    assert errors and "cannot import ENGINE" in errors[0].msg and errors[0].hint


def test_system_check_reports_missing_program(sources, tmp_path):
    sources(postgres=(ENGINES["postgres"], {"dbname": "x", "bin_dir": str(tmp_path)}))
    errors = [e for e in run_checks() if e.id == "backups.E002"]
    assert len(errors) == 2 and "pg_dump" in errors[0].msg and "postgresql-client" in errors[0].hint


def test_system_check_reports_bad_hooks(settings):
    settings.BACKUP_HOOKS = {"pre_restor": [], "pre_restore": [{"command": "systemctl stop app"}]}
    ids = {e.id for e in run_checks()}
    assert {"backups.E003", "backups.E004"} <= ids


@pytest.mark.django_db
def test_system_checks_name_bad_operations_settings(settings):
    settings.BACKUP_SCHEDULE_DAILY = "2am"
    settings.BACKUP_METRICS_ALLOW = "localhost"
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_MONTHLY, settings.BACKUP_MAX_COUNT = 7, 12, 10
    ids = {m.id: m.msg for m in run_checks()}
    assert "BACKUP_SCHEDULE_DAILY='2am'" in ids["backups.E011"]
    assert "'localhost' is not an address" in ids["backups.E012"]
    assert "can keep 19 backups but BACKUP_MAX_COUNT=10" in ids["backups.W010"]
    settings.BACKUP_KEEP_WITHIN = "1 week"
    assert "BACKUP_KEEP_WITHIN='1 week'" in {m.id: m.msg for m in run_checks()}["backups.E010"]


@pytest.mark.parametrize("bad", ["0", "two", "-1", ""])
def test_system_check_names_a_bad_backup_parallel(settings, bad):
    settings.BACKUP_PARALLEL = bad
    errors = {m.id: m for m in run_checks()}
    assert f"BACKUP_PARALLEL={bad!r} is not a number of components" in errors["backups.E013"].msg
    assert "BACKUP_PARALLEL=2" in errors["backups.E013"].hint
    settings.BACKUP_PARALLEL = "3"
    assert "backups.E013" not in {m.id for m in run_checks()}
