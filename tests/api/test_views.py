"""Every endpoint of api/views.py through the Django test client, over real PostgreSQL, SQLite and
uploads: backups, downloads, verify, delete, restores, pins, the schema and docs."""

import hashlib
import io
import re
import subprocess
import tarfile
from datetime import timedelta

import pytest
import zstandard
from django.utils import timezone

from backups_app.models import Backup, Restore, RunStatus
from backups_app.services import locks
from tests.api.conftest import assert_error, staff_user, token_client
from tests.stacks import ENGINES, pg_connect

pytestmark = pytest.mark.django_db
API = "/api/system"


def take_backup(client, **body):
    response = client.post(f"{API}/backup?wait=true", {"description": "test", **body}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


# Backups


def test_create_backup_queued_runs_on_the_worker(admin_api, pg_stack, sync_worker):
    response = admin_api.post(f"{API}/backup", {"include_uploads": True, "description": "Daily backup"},
                              content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["components"] == {"postgres": True, "sqlite": True, "uploads": True}
    assert body["backup_id"].startswith("backup_") and body["created_at"].endswith("Z")

    detail = admin_api.get(f"{API}/backup/{body['backup_id']}").json()
    assert detail["status"] == "completed", detail["log_tail"]
    assert detail["trigger"] == "api" and detail["description"] == "Daily backup"
    assert detail["counts"]["postgres"]["documents"] == 150 and detail["counts"]["sqlite"]["app"]["chunks"] == 40
    assert {a["component"] for a in detail["artifacts"]} == {"postgres", "sqlite", "uploads"}
    stored = Backup.objects.get(backup_id=body["backup_id"])
    assert [a["sha256"] for a in detail["artifacts"]] == [a.sha256 for a in stored.artifacts.all()]
    assert detail["size_mb"] == stored.size_mb and "finished: completed" in detail["log_tail"]


def test_create_backup_waits_with_the_seed_shape(admin_api, pg_stack):
    body = take_backup(admin_api)  # include_uploads defaults to false, as in the seed
    assert body["status"] == "completed" and body["size_mb"] >= 0
    assert body["components"] == {"postgres": True, "sqlite": True, "uploads": False}
    assert Backup.objects.get(backup_id=body["backup_id"]).artifacts.filter(component="uploads").count() == 0


def test_create_backup_of_chosen_components(admin_api, pg_stack):
    body = take_backup(admin_api, components=["sqlite"])
    assert body["components"] == {"postgres": False, "sqlite": True, "uploads": False}


def test_create_backup_rejects_unknown_component_by_name(admin_api, pg_stack):
    body = assert_error(admin_api.post(f"{API}/backup", {"components": ["qdrant"]}, content_type="application/json"),
                        400, "unknown_component")
    assert "'qdrant'" in body["detail"] and "postgres" in body["detail"]
    assert not Backup.objects.exists()


def test_create_backup_validates_the_body(admin_api, pg_stack):
    assert_error(admin_api.post(f"{API}/backup", {"description": "x" * 501}, content_type="application/json"),
                 422, "validation_error")
    assert_error(admin_api.post(f"{API}/backup", "not json", content_type="application/json"), 400, "bad_request")


def test_failed_backup_with_wait_reports_the_error(admin_api, sources, tmp_path):
    sources(uploads=(ENGINES["uploads"], {"path": str(tmp_path / "missing")}))
    body = assert_error(admin_api.post(f"{API}/backup?wait=true", {"components": ["uploads"]},
                                       content_type="application/json"), 500, "backup_failed")
    assert "does not exist" in body["detail"]
    assert Backup.objects.get().status == RunStatus.FAILED


def test_no_backup_while_a_restore_runs(admin_api, pg_stack):
    locks.acquire(locks.RESTORE_LOCK, "restore_20260101_000000")
    assert_error(admin_api.post(f"{API}/backup", {}, content_type="application/json"), 409, "busy")


def test_list_backups_newest_first_with_paging_and_filter(admin_api, pg_stack):
    ids = [take_backup(admin_api, components=["sqlite"])["backup_id"] for _ in range(3)]
    failed_one = Backup.objects.create(backup_id="backup_20000101_000000", status=RunStatus.FAILED,
                                       created_at=timezone.now() - timedelta(days=1))
    body = admin_api.get(f"{API}/backups").json()
    assert [b["backup_id"] for b in body["backups"]][:3] == ids[::-1]
    assert body["total"] == 4
    expected = sum(b.size_bytes for b in Backup.objects.all()) / (1024 * 1024)
    assert body["storage_used_mb"] == round(expected, 2)
    assert set(body["backups"][0]) >= {"backup_id", "created_at", "size_mb", "description", "status"}

    page = admin_api.get(f"{API}/backups?limit=2&offset=1").json()
    assert [b["backup_id"] for b in page["backups"]] == [ids[1], ids[0]] and page["total"] == 4
    failed = admin_api.get(f"{API}/backups?status=failed").json()
    assert [b["backup_id"] for b in failed["backups"]] == [failed_one.backup_id] and failed["total"] == 1
    assert_error(admin_api.get(f"{API}/backups?status=bogus"), 422, "validation_error")
    assert_error(admin_api.get(f"{API}/backups?limit=0"), 422, "validation_error")


def test_get_backup_validates_the_id(admin_api, pg_stack):
    body = assert_error(admin_api.get(f"{API}/backup/backup_..etc"), 422, "validation_error")
    assert "backup_id" in body["detail"] and "pattern" in body["detail"]
    assert_error(admin_api.get(f"{API}/backup/backup_20990101_000000"), 404, "not_found")


# Download


def test_download_streams_a_tar_that_stock_tools_check(admin_api, pg_stack, tmp_path):
    backup_id = take_backup(admin_api, include_uploads=True)["backup_id"]
    response = admin_api.get(f"{API}/backup/{backup_id}/download")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-tar"
    assert response["Content-Disposition"] == f'attachment; filename="{backup_id}.tar"'
    data = b"".join(response.streaming_content)
    assert len(data) == int(response["Content-Length"])
    archive = tmp_path / "dl.tar"
    archive.write_bytes(data)
    listing = subprocess.run(["tar", "-tf", archive], check=True, capture_output=True, text=True).stdout.split()
    stored = Backup.objects.get(backup_id=backup_id)
    assert sorted(listing) == sorted(f"{backup_id}/{n}" for n in
                                     [*stored.artifacts.values_list("name", flat=True), "SHA256SUMS", "metadata.json"])
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", archive, "-C", out], check=True)
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out / backup_id, check=True, capture_output=True)
    again = admin_api.get(f"{API}/backup/{backup_id}/download")
    assert b"".join(again.streaming_content) == data  # byte-identical: members carry the completion time


def test_download_one_artifact(admin_api, pg_stack):
    backup_id = take_backup(admin_api)["backup_id"]
    artifact = Backup.objects.get(backup_id=backup_id).artifacts.get(name="postgres.dump")
    response = admin_api.get(f"{API}/backup/{backup_id}/download?artifact={artifact.name}")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == f'attachment; filename="{artifact.name}"'
    data = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(data) == artifact.size_bytes
    assert hashlib.sha256(data).hexdigest() == artifact.sha256


def test_download_refuses_bad_artifacts_and_unfinished_backups(admin_api, pg_stack):
    backup_id = take_backup(admin_api)["backup_id"]
    assert_error(admin_api.get(f"{API}/backup/{backup_id}/download?artifact=../../etc/passwd"), 422,
                 "validation_error")
    assert_error(admin_api.get(f"{API}/backup/{backup_id}/download?artifact=x..y"), 404, "not_found")
    body = assert_error(admin_api.get(f"{API}/backup/{backup_id}/download?artifact=nope.dump"), 404, "not_found")
    assert "postgres.dump" in body["detail"]
    Backup.objects.create(backup_id="backup_20990101_000000")
    assert_error(admin_api.get(f"{API}/backup/backup_20990101_000000/download"), 409, "not_completed")


def test_download_of_a_set_missing_in_storage_is_404(admin_api, pg_stack, backup_storage_dir):
    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    (backup_storage_dir / backup_id / "SHA256SUMS").unlink()
    assert_error(admin_api.get(f"{API}/backup/{backup_id}/download"), 404, "not_found")


# Verify and delete


def test_verify_reports_each_artifact(admin_api, pg_stack, backup_storage_dir):
    backup_id = take_backup(admin_api)["backup_id"]
    body = admin_api.post(f"{API}/backup/{backup_id}/verify").json()
    assert body["ok"] is True and set(body["artifacts"].values()) == {None}
    dump = backup_storage_dir / backup_id / "postgres.dump"
    damaged = bytearray(dump.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    dump.write_bytes(bytes(damaged))
    body = admin_api.post(f"{API}/backup/{backup_id}/verify").json()
    assert body["ok"] is False and "does not match" in body["artifacts"]["postgres.dump"]
    assert body["artifacts"]["sqlite_app.db"] is None
    from backups_app.models import Verification

    assert list(Verification.objects.filter(trigger="api").order_by("id").values_list("status", flat=True)) == [
        "completed", "failed"]  # recorded, so metrics and health see API verifications too


def test_delete_backup(admin_api, pg_stack, backup_storage_dir):
    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    response = admin_api.delete(f"{API}/backup/{backup_id}")
    assert response.status_code == 204 and not response.content
    assert not (backup_storage_dir / backup_id).exists()
    assert_error(admin_api.delete(f"{API}/backup/{backup_id}"), 404, "not_found")
    assert_error(admin_api.delete(f"{API}/backup/nonsense"), 422, "validation_error")


def test_delete_refused_while_a_restore_uses_the_backup(admin_api, pg_stack, backup_storage_dir):
    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    backup = Backup.objects.get(backup_id=backup_id)
    Restore.objects.create(restore_id="restore_20990101_000000", backup=backup, source_backup_id=backup_id)
    body = assert_error(admin_api.delete(f"{API}/backup/{backup_id}"), 409, "busy")
    assert "being restored" in body["detail"]
    assert (backup_storage_dir / backup_id / "metadata.json").exists()


# Restore


def test_restore_needs_confirmation_then_restores(admin_api, pg_stack, sync_worker):
    backup_id = take_backup(admin_api, include_uploads=True)["backup_id"]
    with pg_connect(pg_stack["pg"]) as conn:
        conn.execute("DELETE FROM documents WHERE id > 100")
        conn.execute("UPDATE documents SET title = 'changed' WHERE id = 1")
    (pg_stack["uploads"] / "a.txt").write_text("changed\n")

    body = assert_error(admin_api.post(f"{API}/restore", {"backup_id": backup_id, "components": ["postgres"]},
                                       content_type="application/json"), 409, "confirmation_required")
    assert body["warning"] == "This will overwrite existing data" and body["confirm_required"] is True
    assert body["affected"]["postgres.documents"] == 100, body["affected"]
    assert body["counts"]["postgres"]["backup"]["documents"] == 150
    assert not Restore.objects.exists()

    response = admin_api.post(f"{API}/restore", {"backup_id": backup_id, "confirm": True,
                                                 "components": ["postgres", "uploads"]},
                              content_type="application/json")
    assert response.status_code == 202, response.content
    accepted = response.json()
    assert set(accepted) == {"restore_id", "status", "started_at"}
    status = admin_api.get(f"{API}/restore/status").json()
    assert status["restore_id"] == accepted["restore_id"] and status["status"] == "completed", status["log_tail"]
    assert status["backup_id"] == backup_id and status["components"] == ["postgres", "uploads"]
    assert admin_api.get(f"{API}/restore/{accepted['restore_id']}").json() == status
    with pg_connect(pg_stack["pg"]) as conn:
        rows = conn.execute("SELECT id, title FROM documents ORDER BY id").fetchall()
    assert rows == [(i, f"doc {i}") for i in range(1, 151)]
    assert (pg_stack["uploads"] / "a.txt").read_text() == "alpha\n"


def test_restore_dry_run_plans_without_changing(admin_api, pg_stack):
    backup_id = take_backup(admin_api)["backup_id"]
    body = admin_api.post(f"{API}/restore", {"backup_id": backup_id, "dry_run": True, "confirm": True},
                          content_type="application/json").json()
    assert body["ok"] is True and body["components"] == ["postgres", "sqlite"]
    assert all(a["verified"] for a in body["artifacts"].values())
    assert not Restore.objects.exists()


def test_restore_errors(admin_api, pg_stack):
    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    post = lambda body: admin_api.post(f"{API}/restore", body, content_type="application/json")  # noqa: E731
    assert_error(post({"backup_id": "../x", "confirm": True}), 422, "validation_error")
    body = assert_error(post({"backup_id": backup_id, "confim": True}), 422, "validation_error")
    assert "confim" in body["detail"]
    assert_error(post([backup_id]), 422, "validation_error")
    assert_error(post({"backup_id": "backup_20990101_000000", "confirm": True}), 404, "not_found")
    body = assert_error(post({"backup_id": backup_id, "confirm": True, "components": ["postgres"]}), 400,
                        "unknown_component")
    assert "'postgres'" in body["detail"] and "sqlite" in body["detail"]
    body = assert_error(post({"backup_id": backup_id, "confirm": True, "options": {"sqlite": {"bogus": 1}}}), 400,
                        "bad_request")
    assert "bogus" in body["detail"]
    assert_error(post({"confirm": True}), 422, "validation_error")
    locks.acquire(locks.RESTORE_LOCK, "restore_20990101_000000")
    assert_error(post({"backup_id": backup_id, "confirm": True}), 409, "busy")
    assert not Restore.objects.exists()


def test_restore_status_lookups(admin_api, db):
    assert_error(admin_api.get(f"{API}/restore/status"), 404, "not_found")
    assert_error(admin_api.get(f"{API}/restore/restore_x"), 422, "validation_error")
    assert_error(admin_api.get(f"{API}/restore/restore_20990101_000000"), 404, "not_found")


# Schema and docs


def test_openapi_schema_and_docs(client):
    schema = client.get(f"{API}/openapi.json").json()
    assert {"/api/system/backup", "/api/system/backups", "/api/system/backup/{backup_id}/download",
            "/api/system/restore", "/api/system/restore/status"} <= set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {"BearerToken", "StaffSession"}
    assert client.get(f"{API}/docs").status_code == 200


def test_docs_page_uses_our_own_static_files(client):
    """Swagger UI is served from here (ninja's assets via STATICFILES_DIRS), never from a CDN,
    although ninja is not an installed app (start-up time): its page and its files load."""
    page = client.get(f"{API}/docs").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert {"/static/ninja/swagger-ui-bundle.js", "/static/ninja/swagger-ui-init.js",
            "/static/ninja/swagger-ui.css", "/static/ninja/favicon.svg"} <= set(assets)
    assert "cdn" not in page and "https://" not in page
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content), asset


def test_downloaded_uploads_artifact_is_a_standard_tar(admin_api, pg_stack):
    """The uploads artifact as downloaded is a zstd-compressed tar (the default compression)."""
    backup_id = take_backup(admin_api, include_uploads=True)["backup_id"]
    artifact = Backup.objects.get(backup_id=backup_id).artifacts.get(component="uploads").name
    data = b"".join(admin_api.get(f"{API}/backup/{backup_id}/download?artifact={artifact}").streaming_content)
    with tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 24)),
                      mode="r:") as tar:
        assert {"a.txt", "sub/b.bin"} <= set(tar.getnames())


# Pins and audit (issue 7 wired into the API)


def test_pin_blocks_delete_until_unpinned(admin_api, pg_stack, backup_storage_dir):
    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    pinned = admin_api.post(f"{API}/backup/{backup_id}/pin")
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    body = assert_error(admin_api.delete(f"{API}/backup/{backup_id}"), 409, "busy")
    assert "pinned" in body["detail"]
    assert (backup_storage_dir / backup_id / "metadata.json").exists()
    assert admin_api.post(f"{API}/backup/{backup_id}/unpin").json()["pinned"] is False
    assert admin_api.delete(f"{API}/backup/{backup_id}").status_code == 204


def test_pin_needs_change_permission(pg_stack):
    from backups_app.models import Backup

    Backup.objects.create(backup_id="backup_20990101_000000", status="completed")
    viewer = token_client(staff_user("viewer", "backups_app.view_backup"))
    assert viewer.post(f"{API}/backup/backup_20990101_000000/pin").status_code == 403
    assert not Backup.objects.get().pinned


def test_api_actions_are_audited_with_user_and_address(admin_api, pg_stack, sync_worker):
    from backups_app.models import AuditEvent

    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    b"".join(admin_api.get(f"{API}/backup/{backup_id}/download").streaming_content)
    admin_api.post(f"{API}/restore", {"backup_id": backup_id, "confirm": True, "components": ["sqlite"]},
                   content_type="application/json")
    admin_api.delete(f"{API}/backup/{backup_id}")
    events = list(AuditEvent.objects.exclude(action="token.create")  # the fixture's token
                  .order_by("id").values_list("action", "username", "origin", "target"))
    assert [e[0] for e in events] == ["backup.create", "backup.download", "restore.start", "backup.delete"]
    assert {e[1] for e in events} == {"root"} and {e[2] for e in events} == {"127.0.0.1"}
    assert events[0][3] == backup_id


def test_single_artifact_download_redirects_to_presigned_url_on_s3(admin_api, pg_stack, s3_backups, settings):
    import urllib.request

    from backups_app.models import AuditEvent

    backup_id = take_backup(admin_api, components=["sqlite"])["backup_id"]
    settings.BACKUP_S3_PRESIGNED_DOWNLOADS = True
    response = admin_api.get(f"{API}/backup/{backup_id}/download", {"artifact": "sqlite_app.db"})
    assert response.status_code == 302
    with urllib.request.urlopen(response["Location"]) as fetched:
        assert hashlib.sha256(fetched.read()).hexdigest() == Backup.objects.get(
            backup_id=backup_id).artifacts.get(name="sqlite_app.db").sha256
    # The whole set cannot be presigned (it is built on the fly): it still streams.
    whole = admin_api.get(f"{API}/backup/{backup_id}/download")
    assert whole.status_code == 200 and whole.streaming
    assert AuditEvent.objects.filter(action="backup.download", details__presigned=True).count() == 1
