"""Redis: logical dump of every type across several dbs, exact and merge restores, TTLs, the
by-hand path (zstd -dc | redis-cli --pipe), the optional RDB snapshot and the rehearsal.
Every test uses its own redis-server on a free port; the shared server is never flushed."""

import io
import subprocess
import time

import pytest
import redis
from hiredis import pack_command

from backups_app.components import get_component
from backups_app.components.redis import read_commands, split_password
from backups_app.errors import ComponentError
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.conftest import REDIS_PASSWORD
from tests.servers import redis_server
from tests.stacks import ENGINES


def client(url, db=0):
    return redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{db}")


def fill(url):
    """A few thousand keys of every type in db 0, 3 and 15, binary names and values, TTLs."""
    c0, c3, c15 = client(url, 0), client(url, 3), client(url, 15)
    pipe = c0.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"str:{i}", f"value-{i}" * (i % 7 + 1))
    pipe.execute()
    c0.set(b"bin:\x00\xff\xfe key", bytes(range(256)) * 4)
    c0.hset("hash:small", mapping={"a": "1", "b": b"\x00\x01"})
    c0.hset("hash:big", mapping={f"f{i}": i for i in range(1000)})
    c0.rpush("list", *[f"item-{i}" for i in range(500)], b"\xff\x00")
    c0.sadd("set:ints", *range(100))
    c0.sadd("set:strs", *[f"m{i}" for i in range(300)])
    c0.zadd("zset", {f"member-{i}": i / 3 for i in range(400)})
    for i in range(50):
        c0.xadd("stream", {"n": i, "payload": b"\x00bin"})
    c0.xgroup_create("stream", "workers", id="0")
    c0.xreadgroup("workers", "alice", {"stream": ">"}, count=7)
    c0.set("ttl:long", "x", ex=3600)
    c0.set("ttl:short-ms", "y", px=90_000)
    c3.hset("sessions:1", mapping={"user": "kim"})
    c3.set("cache:embedding", b"\x93" * 10000, ex=600)
    c15.lpush("queue", "job1", "job2")
    for c in (c0, c3, c15):
        c.close()


READ = {b"string": lambda p, k: p.get(k), b"hash": lambda p, k: p.hgetall(k),
        b"list": lambda p, k: p.lrange(k, 0, -1), b"set": lambda p, k: p.smembers(k),
        b"zset": lambda p, k: p.zrange(k, 0, -1, withscores=True)}


def stream_value(c, key):
    groups = [(g["name"], g["last-delivered-id"], g["pending"]) for g in c.xinfo_groups(key)]
    pending = [[(p["message_id"], p["consumer"]) for p in c.xpending_range(key, g[0], "-", "+", 1000)]
               for g in groups]
    return c.xrange(key), groups, pending


def snapshot(url):
    """{db: {key: (type, content, absolute expiry ms or -1)}} for every db holding keys; contents
    compared by meaning (DUMP of a hash table depends on its insertion history)."""
    out = {}
    with client(url) as c:
        dbs = [int(db[2:]) for db in c.info("keyspace")]
    for db in dbs:
        with client(url, db) as c:
            keys = list(c.scan_iter(count=1000))
            pipe = c.pipeline(transaction=False)
            for key in keys:
                pipe.type(key)
                pipe.pexpiretime(key)
            replies = pipe.execute()
            kinds, expiries = replies[::2], replies[1::2]
            for key, kind in zip(keys, kinds):
                if kind != b"stream":
                    READ[kind](pipe, key)
            contents = iter(pipe.execute())
            out[db] = {key: (kind, stream_value(c, key) if kind == b"stream" else next(contents), expiry)
                       for key, kind, expiry in zip(keys, kinds, expiries)}
    return out


def assert_same(actual, expected):
    assert set(actual) == set(expected)
    for db, keys in expected.items():
        assert set(actual[db]) == set(keys), f"db {db} keys differ"
        for key, (kind, content, expiry) in keys.items():
            got_kind, got_content, got_expiry = actual[db][key]
            assert (got_kind, got_content) == (kind, content), f"db {db} key {key!r} differs"
            assert (got_expiry < 0) == (expiry < 0) and abs(got_expiry - expiry) <= 1000, (key, got_expiry, expiry)


@pytest.mark.django_db
def test_round_trip_exact_mode_every_type(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    before = snapshot(redis_url)
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    facts = backup.manifest["components"]["redis"]
    assert facts["counts"] == {"db0": 3010, "db3": 2, "db15": 1}
    assert list(backup.manifest["artifacts"]) == ["redis.dump.zst"]
    assert REDIS_PASSWORD not in backup.log + str(backup.manifest)

    with client(redis_url) as c0, client(redis_url, 3) as c3, client(redis_url, 5) as c5:
        c0.flushdb()
        c0.set("str:1", "changed")
        c0.set("added-after-backup", "x")
        c3.delete("sessions:1")
        c5.set("new-db", "x")
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert_same(snapshot(redis_url), before)
    with client(redis_url) as c:
        group = c.xinfo_groups("stream")[0]
        assert (group["name"], group["pending"], group["consumers"]) == (b"workers", 7, 1)


@pytest.mark.django_db
def test_merge_mode_keeps_other_keys(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url, "dbs": "0,3"}))
    before = snapshot(redis_url)
    backup = backups.create_backup(["redis"])
    assert backup.manifest["components"]["redis"]["counts"] == {"db0": 3010, "db3": 2}
    with client(redis_url) as c:
        c.set("str:1", "changed")
        c.set("added-after-backup", "kept")
        c.delete("zset")
    restore = restores.start_restore(backup.backup_id, ["redis"], {"redis": {"mode": "merge"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    after = snapshot(redis_url)
    assert after[0].pop(b"added-after-backup")[0] is not None
    assert_same(after, before)


@pytest.mark.django_db
def test_restore_option_is_validated(sources, redis_url):
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    client(redis_url).set("k", "v")
    backup = backups.create_backup(["redis"])
    with pytest.raises(Exception, match="expected exact or merge"):
        restores.start_restore(backup.backup_id, ["redis"], {"redis": {"mode": "mirror"}}, confirm=True)


@pytest.mark.django_db
def test_keys_expired_since_backup_are_skipped_and_ttls_do_not_stretch(sources, redis_url):
    with client(redis_url) as c:
        c.set("short", "gone soon", px=1500)
        c.set("long", "stays", ex=30)
        c.set("forever", "no ttl")
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    time.sleep(2)
    with client(redis_url) as c:
        c.flushdb()
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "skipped 1 that expired since the backup" in restore.log
    with client(redis_url) as c:
        assert sorted(c.keys()) == [b"forever", b"long"]
        assert 26_000 <= c.pttl("long") <= 28_100  # 30 s minus the 2 s since the backup
        assert c.pttl("forever") == -1
    # A rehearsal counts the expired key as restorable: the dump holds it, Redis just drops it.
    reader = backups.open_reader(backup)
    lines = []
    assert get_component("redis").rehearse(reader, reader.artifacts_of("redis"), lines.append) == {"db0": 3}
    assert "loaded 2 keys into a temporary redis-server; 1 more had expired since the backup" in lines[0]


@pytest.mark.django_db
def test_dump_restores_by_hand_with_redis_cli(sources, redis_url, backup_storage_dir):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    before = snapshot(redis_url)
    backup = backups.create_backup(["redis"])
    with client(redis_url) as c:
        c.flushall()
    base_url, password = split_password(redis_url)
    port = base_url.rsplit(":", 1)[1].split("/")[0]
    dump = backup_storage_dir / backup.backup_id / "redis.dump.zst"
    unpacked = subprocess.run(["zstd", "-dc", str(dump)], check=True, capture_output=True).stdout
    piped = subprocess.run(["redis-cli", "-p", port, "--pipe"], input=unpacked, capture_output=True,
                           env={"REDISCLI_AUTH": password}, check=True)
    assert b"errors: 0" in piped.stdout
    assert_same(snapshot(redis_url), before)


@pytest.mark.django_db
def test_rdb_snapshot_is_a_stock_rdb(sources, redis_url, backup_storage_dir, tmp_path):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url, "rdb": "true"}))
    before = snapshot(redis_url)
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert sorted(backup.manifest["artifacts"]) == ["redis.dump.zst", "redis.rdb"]
    rdb = backup_storage_dir / backup.backup_id / "redis.rdb"
    assert rdb.read_bytes()[:5] == b"REDIS"
    # The documented by-hand restore: start a redis-server on the file.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dump.rdb").write_bytes(rdb.read_bytes())
    with redis_server("--dbfilename", "dump.rdb", "--dir", str(tmp_path / "data")) as loaded_url:
        assert_same(snapshot(loaded_url), before)


@pytest.mark.django_db
def test_rdb_refused_by_server_without_sync_fails_clearly(sources):
    with redis_server("--rename-command", "SYNC", "", "--rename-command", "PSYNC", "") as url:
        client(url).set("k", "v")
        sources(redis=(ENGINES["redis"], {"url": url, "rdb": "true"}))
        backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.FAILED
    assert "Servers that forbid SYNC" in backup.error and "unset REDIS_RDB" in backup.error
    assert backup.artifacts.count() == 0


@pytest.mark.django_db
def test_rehearsal_uses_a_temporary_server(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    reader = backups.open_reader(backup)
    lines = []
    counts = get_component("redis").rehearse(reader, reader.artifacts_of("redis"), lines.append)
    assert counts == {"db0": 3010, "db3": 2, "db15": 1}
    assert "temporary redis-server" in lines[0]
    assert snapshot(redis_url)[0].keys() >= {b"str:1", b"stream"}


@pytest.mark.django_db
def test_unreachable_redis_is_a_readable_failure(sources):
    sources(redis=(ENGINES["redis"], {"url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"}))
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.FAILED
    assert "redis: Redis at redis://127.0.0.1:1/0" in backup.error
    assert REDIS_PASSWORD not in backup.error + backup.log


def test_password_is_split_from_url():
    assert split_password("redis://user:p%40ss@host:6380/2") == ("redis://user@host:6380/2", "p@ss")
    assert split_password("redis://:pw@[::1]:6379") == ("redis://[::1]:6379", "pw")
    assert split_password("unix:///run/redis.sock?db=1") == ("unix:///run/redis.sock?db=1", "")
    # redis-py also reads credentials from the query; the user info wins, as in redis-py
    assert split_password("redis://host:6379/0?password=p%40ss&username=kim&socket_timeout=5") == \
        ("redis://kim@host:6379/0?socket_timeout=5", "p@ss")
    assert split_password("redis://:pw@host/0?password=other") == ("redis://host/0", "pw")
    assert split_password("unix:///run/redis.sock?password=pw&db=1") == ("unix:///run/redis.sock?db=1", "pw")


@pytest.mark.django_db
def test_password_in_the_url_query_logs_in_and_never_shows(sources, redis_url):
    fill(redis_url)
    base_url, password = split_password(redis_url)
    sources(redis=(ENGINES["redis"], {"url": f"{base_url}?password={password}"}))
    assert REDIS_PASSWORD not in str(get_component("redis").describe())
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert backup.manifest["components"]["redis"]["counts"] == {"db0": 3010, "db3": 2, "db15": 1}
    assert REDIS_PASSWORD not in backup.log + str(backup.manifest)
    sources(redis=(ENGINES["redis"], {"url": f"redis://127.0.0.1:1/0?password={REDIS_PASSWORD}"}))
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.FAILED
    assert "redis: Redis at redis://127.0.0.1:1/0:" in backup.error
    assert REDIS_PASSWORD not in backup.error + backup.log


@pytest.mark.django_db
def test_plan_shows_live_and_backup_keys(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    with client(redis_url, 3) as c:
        c.set("one-more", "x")
    plan = restores.plan_restore(backup.backup_id, ["redis"])
    assert plan["counts"]["redis"] == {"live": {"db0": 3010, "db3": 3, "db15": 1},
                                       "backup": {"db0": 3010, "db3": 2, "db15": 1}}
    assert plan["affected"] == {"redis.db0": 3010, "redis.db3": 3, "redis.db15": 1}


def test_damaged_or_truncated_dump_is_reported():
    whole = pack_command(("SELECT", 0)) + pack_command((b"RESTORE", b"k", 0, b"payload", b"REPLACE", b"ABSTTL"))
    assert [c[0] for c in read_commands(io.BytesIO(whole))] == [b"SELECT", b"RESTORE"]
    with pytest.raises(ComponentError, match="truncated"):
        list(read_commands(io.BytesIO(whole[:-5])))
    with pytest.raises(ComponentError, match="damaged"):
        list(read_commands(io.BytesIO(b"+OK\r\n")))
