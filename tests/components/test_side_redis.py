"""Redis restores into another database index (redis.db, redis.source_db) and of some keys only
(redis.keys), on a private redis-server; refusals of nonsense and of a live db in disguise."""

import pytest

from backups_app.components._redis_side import glob_matcher
from backups_app.errors import InvalidOption
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from tests.components.test_redis import client
from tests.stacks import ENGINES


def keys(url, db):
    with client(url, db) as c:
        return {k: c.get(k) for k in c.scan_iter(count=1000)}


@pytest.fixture
def redis_backup(sources, redis_url):
    """db 0: user:1..5 and session:1..3 (with a TTL), db 2: other; backed up, then changed live."""
    with client(redis_url, 0) as c:
        c.mset({f"user:{i}": f"u{i}" for i in range(1, 6)})
        for i in range(1, 4):
            c.set(f"session:{i}", f"s{i}", ex=3600)
    with client(redis_url, 2) as c:
        c.set("other", "o")
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    with client(redis_url, 0) as c:
        c.delete("session:1", "session:2")
        c.set("user:1", "changed live")
        c.set("added", "live only")
    return redis_url, backup


def restore(backup, **options):
    return restores.start_restore(backup.backup_id, ["redis"], {"redis": options}, confirm=True)


@pytest.mark.django_db
def test_one_db_into_another_index_leaves_the_live_dbs_alone(redis_backup):
    url, backup = redis_backup
    live = keys(url, 0), keys(url, 2)
    plan = restores.plan_restore(backup.backup_id, ["redis"], {"redis": {"db": "7", "source_db": "0"}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["redis"]["target"] == "every key of db 0 into database index 7; the live dbs are not touched"
    run = restore(backup, db="7", source_db="0")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.safety_backup is None and not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    restored = keys(url, 7)
    assert restored == {**{f"user:{i}".encode(): f"u{i}".encode() for i in range(1, 6)},
                        **{f"session:{i}".encode(): f"s{i}".encode() for i in range(1, 4)}}
    with client(url, 7) as c:
        assert 3500 < c.ttl("session:3") <= 3600  # the expiry came along
    assert (keys(url, 0), keys(url, 2)) == live


@pytest.mark.django_db
def test_some_keys_into_the_live_db_keep_every_other_key(redis_backup):
    url, backup = redis_backup
    plan = restores.plan_restore(backup.backup_id, ["redis"], {"redis": {"keys": "session:*"}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["redis"]["live"] is True and plan["targets"]["redis"]["safety_backup"] is True
    run = restore(backup, keys="session:*")
    assert run.status == RunStatus.COMPLETED, run.error
    now = keys(url, 0)
    assert {k for k in now if k.startswith(b"session:")} == {b"session:1", b"session:2", b"session:3"}
    assert now[b"user:1"] == b"changed live" and now[b"added"] == b"live only"
    assert keys(url, 2) == {b"other": b"o"}


@pytest.mark.django_db
def test_some_keys_into_another_index(redis_backup):
    url, backup = redis_backup
    run = restore(backup, db="9", source_db="0", keys="user:[1-2]")
    assert run.status == RunStatus.COMPLETED, run.error
    assert keys(url, 9) == {b"user:1": b"u1", b"user:2": b"u2"}


@pytest.mark.django_db
def test_refusals_in_the_plan(redis_backup):
    url, backup = redis_backup
    with client(url, 4) as c:
        c.set("busy", "1")
    cases = {
        (("db", "7"),): "the backup holds db 0, 2; redis.db restores one at a time: say which with redis.source_db=N",
        (("db", "4"), ("source_db", "0")): "database index 4 holds 1 keys; choose an empty index",
        (("db", "0"), ("source_db", "0")): "redis.db=0 is where the backup's db 0 lives: that is the live restore",
        (("db", "7"), ("source_db", "5")): "the backup holds no db 5",
        (("db", "999"), ("source_db", "0")): "database index 999 does not exist on this server",
    }
    for options, message in cases.items():
        plan = restores.plan_restore(backup.backup_id, ["redis"], {"redis": dict(options)}, verify=False)
        assert not plan["ok"] and any(message in p for p in plan["refusals"]), (options, plan["refusals"])
        run = restore(backup, **dict(options))
        assert run.status == RunStatus.FAILED and message in run.error
    assert keys(url, 4) == {b"busy": b"1"}


@pytest.mark.django_db
def test_nonsense_is_refused_at_once(redis_backup, sources):
    url, backup = redis_backup
    with pytest.raises(InvalidOption, match="redis.source_db picks the backed-up db"):
        restore(backup, source_db="0")
    with pytest.raises(InvalidOption, match="expected a database index"):
        restore(backup, db="-1")
    sources(redis=(ENGINES["redis"], {"url": url, "dbs": "0,3"}))
    with pytest.raises(InvalidOption, match="redis.db=3 is a live database"):
        restore(backup, db="3", source_db="0")


def test_key_patterns_follow_redis_glob_syntax():
    match = glob_matcher("user:[^2-3]?x\\*")
    assert match(b"user:1ax*") and not match(b"user:2ax*") and not match(b"user:1axy")
    assert glob_matcher("a*")(b"a\xff") and not glob_matcher("a*")(b"b")
    assert glob_matcher("") is None
