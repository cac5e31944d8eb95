"""Redis: logical dump of every type across several dbs, exact and merge restores, TTLs, the
by-hand path (zstd -dc | redis-cli --pipe), the optional RDB snapshot and the rehearsal.
Every test uses its own redis-server on a free port; the shared server is never flushed."""

import io
import json
import multiprocessing
import os
import signal
import subprocess
import time

import pytest
import redis
from hiredis import pack_command

from backups_app.components import get_component
from backups_app.components.redis import (
    MARKER,
    first_release,
    payload_rdb_version,
    per_key_format,
    read_commands,
    release_rdb_version,
    restore_command,
    server_of,
    split_password,
)
from backups_app.errors import ComponentError
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.conftest import REDIS_PASSWORD, forge_artifact
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
            assert got_expiry == expiry, f"db {db} key {key!r}: expiry {got_expiry} ms, was {expiry} ms"


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


def drop_sections(backup_storage_dir, backup):
    """The stored manifest as an earlier version wrote it: no section sizes."""
    path = backup_storage_dir / backup.backup_id / "metadata.json"
    manifest = json.loads(path.read_text())
    del manifest["components"]["redis"]["sections"]
    path.write_text(json.dumps(manifest))


@pytest.mark.django_db
@pytest.mark.parametrize("manifest", ["with-sections", "without-sections"])
def test_sections_stream_as_stored_and_a_set_without_them_is_parsed_to_the_same_data(
        sources, redis_url, backup_storage_dir, settings, manifest):
    settings.BACKUP_COMPRESSION = "none"
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    before = snapshot(redis_url)
    backup = backups.create_backup(["redis"])
    dump = (backup_storage_dir / backup.backup_id / "redis.dump").read_bytes()
    sections = backup.manifest["components"]["redis"]["sections"]
    assert [s["db"] for s in sections] == [0, 3, 15]  # the dump's order, not the manifest's sorted keys
    selects = b"".join(pack_command(("SELECT", s["db"])) for s in sections)
    assert sum(s["bytes"] for s in sections) + len(selects) == len(dump)
    if manifest == "without-sections":
        drop_sections(backup_storage_dir, backup)
    with client(redis_url) as c0:
        c0.flushdb()
        c0.set("added-after-backup", "x")
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "restored 3013 keys (exact mode), skipped 0" in restore.log
    assert_same(snapshot(redis_url), before)


@pytest.mark.django_db
def test_a_section_size_that_does_not_match_the_dump_fails_clearly_and_changes_nothing(
        sources, redis_url, backup_storage_dir):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    sections = backup.manifest["components"]["redis"]["sections"]
    claim(backup_storage_dir, backup, sections=[{**sections[0], "bytes": sections[0]["bytes"] - 7}, *sections[1:]])
    with client(redis_url) as c:
        c.set("str:1", "changed")
    before = snapshot(redis_url)
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.FAILED, restore.error
    assert "redis.dump.zst does not match its manifest" in restore.error, restore.error
    assert "the live data was not touched" in restore.error
    assert_same(snapshot(redis_url), before)  # and no spare left


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
    assert "loaded 2 keys into spare db 15 of the live server (emptied again); 1 more had expired" in lines[0]


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
def test_rehearsal_loads_into_spare_dbs_like_a_restore(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    before = snapshot(redis_url)
    reader = backups.open_reader(backup)
    lines = []
    counts = get_component("redis").rehearse(reader, reader.artifacts_of("redis"), lines.append)
    assert counts == {"db0": 3010, "db3": 2, "db15": 1}
    assert "loaded 3013 keys into spare db 14, 13, 12 of the live server (emptied again)" in lines[0]
    assert_same(snapshot(redis_url), before)  # no spare left, live data as it was


@pytest.mark.django_db
def test_rehearsal_without_swapdb_uses_a_temporary_server(sources):
    with redis_server("--rename-command", "SWAPDB", "") as url:
        fill(url)
        sources(redis=(ENGINES["redis"], {"url": url}))
        backup = backups.create_backup(["redis"])
        before = snapshot(url)
        reader = backups.open_reader(backup)
        lines = []
        counts = get_component("redis").rehearse(reader, reader.artifacts_of("redis"), lines.append)
        assert counts == {"db0": 3010, "db3": 2, "db15": 1}
        assert "loaded 3013 keys into a temporary redis-server (no spare db index on the live server: no SWAPDB: " \
               "the server has no SWAPDB command" in lines[0]
        assert_same(snapshot(url), before)


@pytest.mark.django_db
def test_unreachable_redis_is_a_readable_failure(sources):
    sources(redis=(ENGINES["redis"], {"url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"}))
    backup = backups.create_backup(["redis"])
    assert backup.status == RunStatus.FAILED
    assert "redis: Redis at redis://127.0.0.1:1/0" in backup.error
    assert REDIS_PASSWORD not in backup.error + backup.log


@pytest.mark.parametrize("key, expiry, payload", [(b"k", 0, b"v"),
                                                  (b"\r\n\x00" * 50, 1_790_000_000_123, bytes(range(256)) * 400)])
def test_commands_formatted_by_hand_are_what_pack_command_writes(key, expiry, payload):
    assert restore_command(key, expiry, payload) == pack_command((b"RESTORE", key, expiry, payload, b"REPLACE",
                                                                   b"ABSTTL"))
    asks = per_key_format(b"DUMP", b"PEXPIRETIME")
    assert asks % (len(key), key, len(key), key) == pack_command((b"DUMP", key)) + pack_command((b"PEXPIRETIME", key))


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


# --- Exact expiry times (PEXPIRETIME) and older servers -----------------------------------------

def expiries(url, db=0):
    with client(url, db) as c:
        keys = sorted(c.scan_iter(count=1000))
        return {key: c.pexpiretime(key) for key in keys}


@pytest.mark.django_db
def test_expiry_times_survive_round_trips_to_the_millisecond(sources, redis_url):
    with client(redis_url) as c:
        for i in range(200):
            c.set(f"k{i}", i, px=600_000 + i * 7)  # ms expiries that a 1-4 ms drift would change
        c.set("forever", "x")
    sources(redis=(ENGINES["redis"], {"url": redis_url, "batch": "50"}))
    before = expiries(redis_url)
    for _ in range(3):
        backup = backups.create_backup(["redis"])
        assert backup.manifest["components"]["redis"]["expiry"] == "exact"
        time.sleep(0.01)
        assert restores.start_restore(backup.backup_id, ["redis"], confirm=True).status == RunStatus.COMPLETED
        assert expiries(redis_url) == before


@pytest.mark.django_db
def test_server_without_pexpiretime_computes_expiry_from_the_ttl(sources):
    """What a Redis < 7 gives: the TTL, turned into an absolute time with the server's clock."""
    with redis_server("--rename-command", "PEXPIRETIME", "") as url:
        with client(url) as c:
            c.set("k", "v", px=600_000)
            c.set("forever", "x")
        sources(redis=(ENGINES["redis"], {"url": url}))
        backup = backups.create_backup(["redis"])
        assert backup.manifest["components"]["redis"]["expiry"] == "from-ttl"
        assert "expiry times from TTLs: no PEXPIRETIME" in backup.log
    with redis_server() as url:  # a server with PEXPIRETIME to read the result
        sources(redis=(ENGINES["redis"], {"url": url}))
        assert restores.start_restore(backup.backup_id, ["redis"], confirm=True).status == RunStatus.COMPLETED
        with client(url) as c:
            expiry, now = c.pexpiretime("k"), int(time.time() * 1000)
            assert now < expiry <= now + 600_000 and c.pexpiretime("forever") == -1


# --- Version guard: server name, release and RDB version ------------------------------------------

def test_valkey_reports_its_own_version():
    assert server_of({"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.1"}) == \
        ("valkey", "8.1.1")
    assert server_of({"redis_version": "7.0.15"}) == ("redis", "7.0.15")
    assert release_rdb_version("redis", "7.0.15") == 10
    assert release_rdb_version("redis", "8.6.1") == 13
    assert release_rdb_version("valkey", "9.0.0") == 80
    assert first_release("redis", 12) == "7.4"


@pytest.mark.django_db
def test_backup_records_server_and_rdb_version_of_the_payloads(sources, redis_url):
    with client(redis_url) as c:
        c.set("k", "v")
        payload = c.dump("k")
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    facts = backups.create_backup(["redis"]).manifest["components"]["redis"]
    assert facts["server_name"] == "redis"
    assert facts["server_version"] == redis.Redis.from_url(redis_url).info("server")["redis_version"]
    assert facts["rdb_version"] == payload_rdb_version(payload) == 10  # Redis 7.0


def claim(backup_storage_dir, backup, **facts):
    """Rewrite the stored manifest's Redis facts, as a set made by another server would hold them."""
    path = backup_storage_dir / backup.backup_id / "metadata.json"
    manifest = json.loads(path.read_text())
    manifest["components"]["redis"].update(facts)
    path.write_text(json.dumps(manifest))


@pytest.mark.django_db
@pytest.mark.parametrize("target_empty", [False, True], ids=["dump-of-a-key", "release-table"])
def test_restore_into_a_server_with_an_older_rdb_version_is_refused_in_the_plan(
        sources, redis_url, backup_storage_dir, target_empty):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    claim(backup_storage_dir, backup, rdb_version=12, server_version="7.4.2")
    if target_empty:
        client(redis_url).flushall()
    before = snapshot(redis_url)
    plan = restores.plan_restore(backup.backup_id, ["redis"])
    assert not plan["ok"]
    assert plan["preflight"]["redis"]["server"]["rdb_version"] == 10
    expected = ("redis: the backup's DUMP payloads are RDB version 12 (from redis 7.4.2); redis 7.0.15 here reads up "
                "to RDB version 10, so RESTORE would fail: restore into redis 7.4 or later")
    assert plan["refusals"] == [expected]
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.FAILED and "Restore refused before any change" in restore.error
    assert restore.safety_backup is None
    assert_same(snapshot(redis_url), before)


@pytest.mark.django_db
def test_a_payload_redis_refuses_fails_in_the_spare_and_changes_nothing(sources, redis_url, backup_storage_dir,
                                                                        settings):
    settings.BACKUP_COMPRESSION = "none"
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    commands = list(read_commands(io.BytesIO((backup_storage_dir / backup.backup_id / "redis.dump").read_bytes())))
    payload = bytearray(commands[-1][3])
    payload[-10:-8] = (99).to_bytes(2, "little")  # a future RDB version: RESTORE refuses the payload
    commands[-1][3] = bytes(payload)
    forge_artifact(backup_storage_dir, backup, "redis.dump", b"".join(pack_command(tuple(c)) for c in commands))
    with client(redis_url) as c:
        c.set("str:1", "changed")
    before = snapshot(redis_url)
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.FAILED, restore.error
    assert "DUMP payload version or checksum are wrong" in restore.error
    assert "the live data was not touched" in restore.error and "Nothing was changed" in restore.error
    assert "rolling back" not in restore.log
    assert_same(snapshot(redis_url), before)  # and no spare left


# --- ACL: the plan checks the configured user's permissions ---------------------------------------

def acl_user(url, name, *rules):
    with client(url) as c:
        c.execute_command("ACL", "SETUSER", name, "reset", "on", f">{name}-pw", "~*", "&*", *rules)
    return url.replace(f":{REDIS_PASSWORD}@", f"{name}:{name}-pw@")


@pytest.mark.django_db
def test_plan_refuses_a_user_who_may_not_restore_and_names_the_acl_fix(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    # Managed services' usual restricted user: no @dangerous commands (so no ACL DRYRUN either).
    app_url = acl_user(redis_url, "app", "+@all", "-@dangerous", "+info")
    sources(redis=(ENGINES["redis"], {"url": app_url}))
    with client(redis_url) as c:
        c.set("str:1", "changed")
    before = snapshot(redis_url)
    plan = restores.plan_restore(backup.backup_id, ["redis"])
    assert not plan["ok"]
    (refusal_text,) = plan["refusals"]
    assert refusal_text.startswith("redis: the restore needs RESTORE, FLUSHDB, which the server refuses (")
    assert refusal_text.endswith(": ACL SETUSER app +restore +flushdb")
    (note,) = plan["preflight"]["redis"]["notes"]
    assert "no SWAPDB: this user has no permissions to run the 'swapdb' command" in note
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.FAILED and "Restore refused before any change" in restore.error
    assert_same(snapshot(redis_url), before)

    with client(redis_url) as c:  # the fix the plan names
        c.execute_command("ACL", "SETUSER", "app", "+restore", "+flushdb")
    plan = restores.plan_restore(backup.backup_id, ["redis"])
    assert plan["ok"], plan["refusals"]
    assert plan["preflight"]["redis"]["notes"][0].startswith("flushes then loads db 0, 3, 15, not atomically")
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "not atomically (no SWAPDB: this user has no permissions to run the 'swapdb' command)" in restore.log
    with client(redis_url) as c:
        assert c.get("str:1") == b"value-1value-1"


@pytest.mark.django_db
def test_plan_asks_acl_dryrun_where_the_user_may_run_it(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    sources(redis=(ENGINES["redis"], {"url": acl_user(redis_url, "ops", "+@all", "-restore")}))
    plan = restores.plan_restore(backup.backup_id, ["redis"])
    assert plan["refusals"] == ["redis: the restore needs RESTORE, which the server refuses (This user has no "
                                "permissions to run the 'restore' command): ACL SETUSER ops +restore"]
    assert plan["preflight"]["redis"]["notes"][0].startswith("loads db 0 into spare db 14, db 3 into spare db 13")


# --- Atomic exact restore: spare dbs, then SWAPDB -------------------------------------------------

def live_dbs(url, snap):
    """``snap`` without the spare dbs (marked with MARKER) a killed restore left; and those."""
    spares = {db for db, keys in snap.items() if MARKER in keys}
    return {db: keys for db, keys in snap.items() if db not in spares}, spares


@pytest.mark.django_db
def test_restore_killed_while_loading_leaves_live_data_as_it_was(sources, redis_url):
    fill(redis_url)
    with client(redis_url) as c:
        pipe = c.pipeline(transaction=False)
        for i in range(40_000):
            pipe.set(f"bulk:{i}", "x" * 100)
        pipe.execute()
    sources(redis=(ENGINES["redis"], {"url": redis_url, "batch": "20"}))
    backup = backups.create_backup(["redis"])
    with client(redis_url) as c0, client(redis_url, 3) as c3:
        c0.set("str:1", "changed")
        c0.delete("zset", "bulk:7")
        c3.set("added", "after the backup")
    before = snapshot(redis_url)
    component = get_component("redis")
    reader = backups.open_reader(backup)
    worker = multiprocessing.get_context("fork").Process(
        target=component.restore, args=(reader, reader.artifacts_of("redis"), component.parse_restore_options({}),
                                        lambda line: None))
    worker.start()
    deadline = time.monotonic() + 30
    with client(redis_url) as c:
        while c.info("keyspace").get("db14", {}).get("keys", 0) < 5000:  # db 0's spare, part loaded
            assert worker.is_alive() and time.monotonic() < deadline, "the load ended before the kill"
        os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    live, spares = live_dbs(redis_url, snapshot(redis_url))
    assert spares == {14, 13, 12}
    assert_same(live, before)
    # The partial spares are no data: not counted, not backed up; the next restore empties them.
    assert component.inspect() == {"db0": 43008, "db3": 3, "db15": 1}
    assert backups.create_backup(["redis"]).manifest["components"]["redis"]["counts"] == component.inspect()
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "emptied spare db 12, 13, 14" in restore.log
    after = snapshot(redis_url)
    assert sorted(after) == [0, 3, 15] and len(after[0]) == 43010


@pytest.mark.django_db
def test_exact_restore_switches_spares_in_and_empties_them(sources, redis_url):
    fill(redis_url)
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    before = snapshot(redis_url)
    backup = backups.create_backup(["redis"])
    with client(redis_url, 5) as c5:
        c5.set("new-db", "x")
    plan = restores.plan_restore(backup.backup_id, ["redis"])
    assert plan["preflight"]["redis"]["notes"] == [
        "loads db 0 into spare db 14, db 3 into spare db 13, db 5 into spare db 12, db 15 into spare db 11 and "
        "switches them in with SWAPDB in one step; the live data is untouched until then"]
    restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "switched in db 0 (loaded in 14), db 3 (loaded in 13), db 5 (loaded in 12), db 15 (loaded in 11)" \
        in restore.log
    assert_same(snapshot(redis_url), before)  # db 5 emptied, no spare left


@pytest.mark.django_db
def test_server_without_swapdb_flushes_then_loads_and_says_so(sources):
    with redis_server("--rename-command", "SWAPDB", "") as url:
        fill(url)
        sources(redis=(ENGINES["redis"], {"url": url}))
        before = snapshot(url)
        backup = backups.create_backup(["redis"])
        client(url).set("str:1", "changed")
        plan = restores.plan_restore(backup.backup_id, ["redis"])
        assert plan["ok"] and plan["preflight"]["redis"]["notes"] == [
            "flushes then loads db 0, 3, 15, not atomically (no SWAPDB: the server has no SWAPDB command (renamed or "
            "disabled in its configuration)); the safety backup covers a failure"]
        restore = restores.start_restore(backup.backup_id, ["redis"], confirm=True)
        assert restore.status == RunStatus.COMPLETED, restore.error
        assert "not atomically (no SWAPDB" in restore.log
        assert_same(snapshot(url), before)


@pytest.mark.django_db
def test_too_few_empty_dbs_fall_back_to_flush_and_load(sources):
    with redis_server("--databases", "3") as url:
        client(url, 0).set("a", "1")
        client(url, 1).set("b", "2")
        sources(redis=(ENGINES["redis"], {"url": url}))
        backup = backups.create_backup(["redis"])
        plan = restores.plan_restore(backup.backup_id, ["redis"])
        assert "2 empty database indexes besides the restored ones are needed, 1 are free" in \
            plan["preflight"]["redis"]["notes"][0]
        assert restores.start_restore(backup.backup_id, ["redis"], confirm=True).status == RunStatus.COMPLETED
