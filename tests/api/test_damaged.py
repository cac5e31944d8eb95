"""A backup whose latest verification failed is damaged everywhere: ``verified: false`` in the API's
list and detail, the health check fails (503) naming the component and the backup, it is nobody's
newest copy (health's freshness, /metrics' last success), and /metrics exposes when each component
was last verified. Damage is real: a stored artifact is overwritten, then verified."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backups_app.services import backups, verification
from backups_app.services.schedules import setup_schedules

pytestmark = pytest.mark.django_db
API = "/api/system"


def damage(backup, storage_dir):
    name = sorted(backup.manifest["artifacts"])[0]
    (storage_dir / backup.backup_id / backup.manifest["artifacts"][name]["file"]).write_bytes(b"changed")
    return name


def samples(client, metric):
    text = client.get("/metrics").content.decode()
    return {s.labels.get("component"): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == metric}


def test_a_damaged_backup_is_flagged_in_the_api_health_and_metrics(admin_api, client, demo_stack, settings,
                                                                   backup_storage_dir):
    settings.BACKUP_MIN_FREE_MB = 1
    setup_schedules()
    sound = backups.create_backup()
    sqlite_only = backups.create_backup(["sqlite"])
    newest = backups.create_backup()
    assert verification.quick_check(sound.backup_id, "cli")["ok"]
    assert samples(client, "backup_last_verified_timestamp_seconds") == {
        "sqlite": pytest.approx(sound.verifications.get().finished_at.timestamp()),
        "uploads": pytest.approx(sound.verifications.get().finished_at.timestamp())}
    assert client.get(f"{API}/health").status_code == 200
    listed = {b["backup_id"]: b["verified"] for b in admin_api.get(f"{API}/backups").json()["backups"]}
    assert listed == {sound.backup_id: True, sqlite_only.backup_id: None, newest.backup_id: None}

    artifact = damage(newest, backup_storage_dir)
    result = verification.quick_check(newest.backup_id, "cli")
    assert not result["ok"] and result["artifacts"][artifact]

    listed = {b["backup_id"]: b["verified"] for b in admin_api.get(f"{API}/backups").json()["backups"]}
    assert listed[newest.backup_id] is False and listed[sound.backup_id] is True
    assert admin_api.get(f"{API}/backup/{newest.backup_id}").json()["verified"] is False

    response = client.get(f"{API}/health")
    assert response.status_code == 503
    checked = response.json()["checks"]["backups"]["components"]
    for name in ("uploads", "sqlite"):
        assert checked[name]["damaged"] == [newest.backup_id] and not checked[name]["ok"]
        assert f"damaged backup(s) {newest.backup_id}: the latest verification failed" in checked[name]["error"]
        assert "verify again" in checked[name]["error"]
    # Nobody's newest: the sound backups before it are.
    assert checked["uploads"]["backup_id"] == sound.backup_id
    assert checked["sqlite"]["backup_id"] == sqlite_only.backup_id
    assert samples(client, "backup_last_success_timestamp_seconds")["uploads"] == pytest.approx(
        sound.finished_at.timestamp())

    # Put back and verified again: no longer damaged, healthy again.
    (backup_storage_dir / newest.backup_id / newest.manifest["artifacts"][artifact]["file"]).unlink()
    backups.delete_backup(newest.backup_id)
    assert client.get(f"{API}/health").status_code == 200


def test_a_store_whose_only_backups_are_damaged_has_no_sound_backup(client, demo_stack, settings,
                                                                    backup_storage_dir):
    settings.BACKUP_MIN_FREE_MB = 1
    setup_schedules()
    only = backups.create_backup()
    damage(only, backup_storage_dir)
    verification.quick_check(only.backup_id, "cli")
    checked = client.get(f"{API}/health").json()["checks"]["backups"]["components"]["uploads"]
    assert checked["ok"] is False and "backup_id" not in checked
    assert checked["error"].startswith("no backup that is not damaged; damaged backup(s) " + only.backup_id)
