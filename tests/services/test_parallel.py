"""Components of one backup taken side by side (BACKUP_PARALLEL, services/parallel.py): the recorded
start and end of each component overlap with 2 and never with 1, a failing component fails the run
with the others' outcomes recorded and nothing left in storage, and a set taken in parallel restores
every store exactly."""

from datetime import datetime

import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.components import test_chroma as chroma_data
from tests.components import test_redis as redis_data
from tests.servers import free_port
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db


def intervals(backup):
    """[(start, end, name)] of the backup's components, by start."""
    facts = backup.manifest["components"]
    return sorted((datetime.fromisoformat(f["started_at"]), datetime.fromisoformat(f["finished_at"]), name)
                  for name, f in facts.items())


def most_at_once(spans):
    """The largest number of components that were running at the same moment."""
    return max(sum(start <= moment < end for start, end, _name in spans) for moment, _end, _name in spans)


def test_one_at_a_time_with_parallel_1(full_stack, settings):
    settings.BACKUP_PARALLEL = "1"
    backup = backups.create_backup()
    assert backup.status == RunStatus.COMPLETED, backup.error
    spans = intervals(backup)
    assert [name for *_span, name in spans] == backup.components  # in the backup's order
    assert all(end <= next_start for (_s, end, _n), (next_start, _e, _m) in zip(spans, spans[1:]))
    assert most_at_once(spans) == 1


def test_parallel_backup_overlaps_and_restores_every_store_exactly(whole_stack, settings):
    settings.BACKUP_PARALLEL = "2"
    state, damage = whole_stack
    before = state()
    backup = backups.create_backup(description="in parallel")
    assert backup.status == RunStatus.COMPLETED, backup.error
    spans = intervals(backup)
    assert len(spans) == 8 and most_at_once(spans) == 2, spans  # two at once, never more
    assert {backup.state_of(name) for name in backup.components} == {"done"}
    assert all(backup.progress[name]["bytes_done"] > 0 for name in backup.components)  # each thread's meter counted
    assert {a.component for a in backup.artifacts.all()} == set(backup.components)
    for name, facts in backup.manifest["components"].items():
        assert facts["artifacts"] and all(backup.manifest["artifacts"][a]["component"] == name
                                          for a in facts["artifacts"])

    damage()
    restore = restores.start_restore(backup.backup_id, options={"config": {"mode": "apply"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    after = state()
    chroma_data.assert_same(after.pop("chroma"), before.pop("chroma"))
    redis_data.assert_same(after.pop("redis"), before.pop("redis"))
    assert after == before


def test_a_failing_component_fails_the_run_with_the_others_outcomes(full_stack, sources, settings,
                                                                     backup_storage_dir):
    settings.BACKUP_PARALLEL = "2"
    configured = dict(settings.BACKUP_SOURCES)
    sources(postgres=(configured["postgres"]["ENGINE"], configured["postgres"]["OPTIONS"]),
            redis=(ENGINES["redis"], {"url": f"redis://127.0.0.1:{free_port()}/0"}),  # nothing listens there
            **{name: (entry["ENGINE"], entry["OPTIONS"]) for name, entry in configured.items() if name != "postgres"})
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    assert backup.error.startswith("redis: Redis at redis://127.0.0.1:"), backup.error
    # postgres ran beside it and finished; after the failure no other component started
    assert {name: backup.state_of(name) for name in backup.components} == {
        "postgres": "done", "redis": "failed", "uploads": "not_run", "sqlite": "not_run"}
    assert "postgres: " in backup.log and "backing up postgres, redis, uploads, sqlite" in backup.log
    assert not (backup_storage_dir / backup.backup_id).exists()


def test_a_bad_backup_parallel_fails_the_backup_with_the_setting_named(service_stack, settings):
    settings.BACKUP_PARALLEL = "0"
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    assert backup.error == "BACKUP_PARALLEL='0' is not a number of components to take at once (1 or more)."
