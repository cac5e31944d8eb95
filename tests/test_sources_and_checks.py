from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.utils.module_loading import import_string

from backups_app import components
from backups_app.errors import ConfigurationError
from backupsite.sources import build_backup_sources


def test_no_environment_gives_the_demo_stack():
    built = build_backup_sources({}, demo_dir=Path("/demo"))
    assert set(built) == {"uploads", "sqlite"}
    assert built["uploads"]["OPTIONS"] == {"path": "/demo/uploads"}


def test_postgres_from_seed_variable_names():
    built = build_backup_sources({"POSTGRES_HOST": "db", "POSTGRES_USER": "brain", "POSTGRES_PASSWORD": "pw",
                                  "POSTGRES_DB": "knowledge"}, demo_dir=Path("/demo"))
    assert set(built) == {"postgres"}
    assert built["postgres"]["OPTIONS"] == {"host": "db", "user": "brain", "password": "pw", "dbname": "knowledge"}
    postgres = import_string(built["postgres"]["ENGINE"])("postgres", built["postgres"]["OPTIONS"])
    assert postgres.config == {"host": "db", "port": 5432, "user": "brain", "password": "pw", "dbname": "knowledge",
                               "bin_dir": ""}


def test_unknown_source_option_is_rejected_with_the_accepted_list(sources):
    sources(uploads=("backups_app.components.uploads.UploadsComponent", {"path": "/x", "folder": "/y"}))
    with pytest.raises(ConfigurationError, match="unknown option\\(s\\) folder; UploadsComponent accepts path"):
        components.all_components()


def test_system_check_reports_bad_engine_with_id_and_hint(sources):
    sources(broken=("backups_app.components.nothing.Nope", {}))
    errors = [e for e in run_checks() if e.id == "backups.E001"]
    assert errors and "cannot import ENGINE" in errors[0].msg and errors[0].hint


def test_system_check_reports_missing_program(sources, tmp_path):
    sources(postgres=("backups_app.components.postgres.PostgresComponent",
                      {"dbname": "x", "bin_dir": str(tmp_path)}))
    errors = [e for e in run_checks() if e.id == "backups.E002"]
    assert len(errors) == 2 and "pg_dump" in errors[0].msg and "postgresql-client" in errors[0].hint


def test_system_check_reports_bad_hooks(settings):
    settings.BACKUP_HOOKS = {"pre_restor": [], "pre_restore": [{"command": "systemctl stop app"}]}
    ids = {e.id for e in run_checks()}
    assert {"backups.E003", "backups.E004"} <= ids
