"""Side-by-side restores through the API: target options in ``options``, the plan's ``targets``,
a refused option answered 400 with its name, the restore itself."""

import pytest

from backups_app.models import Restore, RunStatus
from backups_app.services import backups
from tests.api.conftest import assert_error
from tests.stacks import pg_connect

API = "/api/system"
pytestmark = pytest.mark.django_db


def post(client, body):
    return client.post(f"{API}/restore", body, content_type="application/json")


def test_plan_and_restore_into_another_database(admin_api, pg_stack, sync_worker, make_pg_database):
    backup = backups.create_backup(["postgres"])
    scratch = make_pg_database()  # empty: filled without replace
    options = {"postgres": {"database": scratch, "tables": "documents"}}
    plan = post(admin_api, {"backup_id": backup.backup_id, "dry_run": True, "options": options})
    assert plan.status_code == 200, plan.content
    target = plan.json()["targets"]["postgres"]
    assert target["live"] is False and target["safety_backup"] is False and scratch in target["target"]

    accepted = post(admin_api, {"backup_id": backup.backup_id, "confirm": True, "components": ["postgres"],
                                "options": options})
    assert accepted.status_code == 202, accepted.content
    restore = Restore.objects.get(restore_id=accepted.json()["restore_id"])
    assert restore.status == RunStatus.COMPLETED, restore.error
    with pg_connect(scratch) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (150,)


def test_a_refused_option_is_a_400_naming_it(admin_api, pg_stack):
    backup = backups.create_backup(["uploads"])
    body = assert_error(post(admin_api, {"backup_id": backup.backup_id, "dry_run": True,
                                         "options": {"uploads": {"directory": "relative/x"}}}), 400, "bad_request")
    assert "uploads.directory=relative/x: give an absolute path" in body["detail"]
    body = assert_error(post(admin_api, {"backup_id": backup.backup_id, "confirm": True, "components": ["uploads"],
                                         "options": {"uploads": {"directory": str(pg_stack["uploads"])}}}),
                        400, "bad_request")
    assert "this source's live data" in body["detail"] and not Restore.objects.exists()
