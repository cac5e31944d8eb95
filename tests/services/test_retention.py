"""Retention applied to stored backups: plan, prune, pins, safety backups, the command and the admin."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone as dj_timezone

from backups_app.errors import ConfigurationError, InvalidId, NotFound
from backups_app.models import AuditEvent, Backup, Restore, RunStatus
from backups_app.services import backups, retention, verification


@pytest.fixture
def aged_backups(demo_stack, settings):
    """Six completed backups 0..5 days old, a failed one, and a safety backup 8 days old."""
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 3, 0, 0
    made = [backups.create_backup() for _ in range(6)]
    now = dj_timezone.now()
    for backup, age in zip(made, range(5, -1, -1)):
        Backup.objects.filter(pk=backup.pk).update(created_at=now - timedelta(days=age))
    failed = Backup.objects.create(backup_id="backup_20200101_000000", status=RunStatus.FAILED,
                                   created_at=now - timedelta(days=50))
    safety = backups.create_backup(kind=Backup.Kind.SAFETY)
    Backup.objects.filter(pk=safety.pk).update(created_at=now - timedelta(days=8))
    return [Backup.objects.get(pk=b.pk) for b in made], failed, Backup.objects.get(pk=safety.pk)


@pytest.mark.django_db
def test_prune_deletes_what_the_policy_does_not_keep(aged_backups, backup_storage_dir, capsys):
    made, failed, safety = aged_backups
    retention.pin(made[0].backup_id)
    call_command("prunebackups", "--dry-run")
    out = capsys.readouterr().out
    assert f"keep   {made[0].backup_id:28} pinned" in out
    assert f"delete {made[1].backup_id:28} will be deleted: no retention rule keeps it" in out
    assert f"delete {safety.backup_id:28} will be deleted: safety backup older than 7 days" in out
    assert Backup.objects.count() == 8  # the dry run deleted nothing

    call_command("prunebackups")
    assert "3 deleted, 4 kept" in capsys.readouterr().out
    remaining = set(Backup.objects.values_list("backup_id", flat=True))
    assert remaining == {made[0].backup_id, made[3].backup_id, made[4].backup_id, made[5].backup_id,
                         failed.backup_id}
    stored = {p.name for p in backup_storage_dir.iterdir()}
    assert stored == {made[0].backup_id, made[3].backup_id, made[4].backup_id, made[5].backup_id}
    assert AuditEvent.objects.filter(action="backup.prune").count() == 3
    assert AuditEvent.objects.filter(action="backup.pin", target=made[0].backup_id).exists()


@pytest.mark.django_db
def test_a_backup_being_restored_is_left_for_the_next_prune(aged_backups):
    made = aged_backups[0]
    Restore.objects.create(restore_id="restore_20990101_000000", backup=made[1], source_backup_id=made[1].backup_id,
                           status=RunStatus.IN_PROGRESS)
    result = retention.prune()
    assert made[1].backup_id not in result["deleted"]
    assert "is being restored" in result["errors"][made[1].backup_id]
    with pytest.raises(CommandError, match="is being restored"):
        call_command("prunebackups")


@pytest.mark.django_db
def test_newest_is_kept_even_when_every_cap_says_otherwise(demo_stack, settings):
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 0, 1, 1
    only = backups.create_backup()
    Backup.objects.filter(pk=only.pk).update(created_at=dj_timezone.now() - timedelta(days=100))
    assert retention.prune()["deleted"] == []
    assert [d.summary for _b, d in retention.plan()] == ["sqlite, uploads: newest, policy is empty"]


@pytest.mark.django_db
def test_pin_validates_the_id():
    with pytest.raises(InvalidId):
        retention.pin("../etc")
    with pytest.raises(NotFound):
        retention.unpin("backup_20990101_000000")


@pytest.mark.django_db
def test_bad_retention_setting_is_a_clear_error(settings):
    settings.BACKUP_KEEP_WITHIN_DAILY = "a week"
    with pytest.raises(ConfigurationError, match="BACKUP_KEEP_WITHIN_DAILY='a week'"):
        retention.plan()
    settings.BACKUP_KEEP_WITHIN_DAILY, settings.BACKUP_RETENTION_TIME_ZONE = "", "Mars/Olympus"
    with pytest.raises(ConfigurationError, match="Mars/Olympus"):
        retention.plan()


def damage(backup, storage_dir):
    """Overwrite one stored artifact of ``backup`` and verify it: its latest verification fails."""
    name = sorted(backup.manifest["artifacts"])[0]
    (storage_dir / backup.backup_id / backup.manifest["artifacts"][name]["file"]).write_bytes(b"changed")
    assert not verification.quick_check(backup.backup_id, "cli")["ok"]
    return name


@pytest.mark.django_db
def test_backups_of_one_store_never_push_out_the_newest_copy_of_another(demo_stack, settings, capsys):
    settings.BACKUP_KEEP_LAST, settings.BACKUP_KEEP_DAILY = 3, 0
    settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 0, 3
    full = backups.create_backup()
    sqlite_only = [backups.create_backup(["sqlite"]) for _ in range(8)]
    call_command("prunebackups", "--dry-run")
    assert f"keep   {full.backup_id:28} uploads: newest, last #1" in capsys.readouterr().out
    result = retention.prune()
    assert sorted(result["deleted"]) == sorted(b.backup_id for b in sqlite_only[:5])
    remaining = list(Backup.objects.values_list("backup_id", flat=True))
    assert remaining == [b.backup_id for b in reversed(sqlite_only[5:])] + [full.backup_id]
    assert {b.backup_id: d.summary for b, d in retention.plan()}[sqlite_only[-1].backup_id] == \
        "sqlite: newest, last #1"


@pytest.mark.django_db
def test_a_damaged_backup_is_not_newest_and_the_sound_one_before_it_stays(demo_stack, settings,
                                                                          backup_storage_dir):
    settings.BACKUP_KEEP_LAST, settings.BACKUP_KEEP_DAILY = 1, 0
    settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 0, 1
    older, middle, newest = (backups.create_backup() for _ in range(3))
    damage(newest, backup_storage_dir)
    fates = {b.backup_id: d for b, d in retention.plan()}
    assert fates[middle.backup_id].summary == "sqlite, uploads: newest"
    assert fates[newest.backup_id].summary == "sqlite, uploads: last #1"  # its slot keeps it, for inspection
    assert not fates[older.backup_id].keep
    assert retention.prune()["deleted"] == [older.backup_id]
