#!/usr/bin/env python
"""Our Redis logical backup and restore against stock redis-cli, on the same data in one run.

    .venv/bin/python bench/redis_roundtrip.py [--keys 200000]

Starts a private redis-server on a free loopback port (never touches the shared one), fills it
with KEYS keys (strings, hashes, lists, sets, sorted sets, some with TTLs, over three dbs), then
times:

  stock backup    redis-cli --rdb FILE                      (the server's own snapshot over SYNC)
  our backup      RedisComponent.backup()                   (SCAN + DUMP/PTTL -> RESP, zstd, SHA-256)
  stock restore   zstd -dc redis.dump.zst | redis-cli --pipe  (our artifact, replayed by the stock client)
  our restore     RedisComponent.restore(mode=exact)        (FLUSHDB + pipelined RESTORE ... ABSTTL)

and prints keys/s, the ratios ours/stock, artifact sizes and the peak RSS of this process before
and after the backup and restore (flat when memory does not grow with the data).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupsite.settings")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.core.files.storage import FileSystemStorage  # noqa: E402

from backups_app.archive.reader import BackupSetReader  # noqa: E402
from backups_app.archive.writer import BackupSetWriter  # noqa: E402
from backups_app.components.redis import RedisComponent  # noqa: E402
from tests.servers import redis_server  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(url, keys):
    """KEYS keys over db 0, 1 and 2; mostly strings of 100-600 bytes like a cache, plus collections."""
    per_db = {0: keys * 8 // 10, 1: keys // 10}
    per_db[2] = keys - sum(per_db.values())
    for db, count in per_db.items():
        client = redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{db}")
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            kind = i % 10
            if kind < 6:
                pipe.set(f"cache:{db}:{i}", os.urandom(50).hex() * (1 + i % 6), ex=3600 if i % 3 == 0 else None)
            elif kind == 6:
                pipe.hset(f"session:{db}:{i}", mapping={"user": i, "agent": "bench", "token": os.urandom(16).hex()})
            elif kind == 7:
                pipe.rpush(f"queue:{db}:{i}", *[f"job-{j}" for j in range(10)])
            elif kind == 8:
                pipe.sadd(f"tags:{db}:{i}", *[f"t{j}" for j in range(8)])
            else:
                pipe.zadd(f"rank:{db}:{i}", {f"m{j}": j * 1.5 for j in range(8)})
            if len(pipe) >= 5000:
                pipe.execute()
        pipe.execute()
        client.close()
    return per_db


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="redis-bench-"))
    storage = FileSystemStorage(location=str(work / "backups"))

    with redis_server("--repl-diskless-sync-delay", "0") as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        fill(url, args.keys)
        component = RedisComponent("redis", {"url": url})
        print(f"{args.keys} keys in db 0-2; RSS after fill {peak_rss_mb():.0f} MB")

        rdb = work / "stock.rdb"
        stock_backup, _ = timed(lambda: subprocess.run(["redis-cli", "-p", port, "--rdb", str(rdb)], check=True,
                                                       capture_output=True))
        writer = BackupSetWriter(storage, "backup_20000101_000000")
        writer.current_component = "redis"
        our_backup, facts = timed(lambda: component.backup(writer, lambda line: None))
        manifest = writer.finish({"components": {"redis": facts}})
        dump = storage.path(f"backup_20000101_000000/{next(iter(manifest['artifacts']))}")
        rss_after_backup = peak_rss_mb()
        assert sum(facts["counts"].values()) == args.keys, facts["counts"]

        def stock_restore():
            redis.Redis(port=int(port)).flushall()
            unpacked = subprocess.Popen(["zstd", "-dcq", dump], stdout=subprocess.PIPE)
            subprocess.run(["redis-cli", "-p", port, "--pipe"], stdin=unpacked.stdout, check=True,
                           capture_output=True)
            unpacked.wait()

        stock_load, _ = timed(stock_restore)
        reader = BackupSetReader(storage, "backup_20000101_000000", manifest)
        our_load, _ = timed(lambda: component.restore(reader, list(manifest["artifacts"]), {"mode": "exact"},
                                                      lambda line: None))
        live = component.inspect()
        assert live == facts["counts"], (live, facts["counts"])

    def row(step, ours, stock, stock_name):
        print(f"{step:8} ours {ours:6.2f}s ({args.keys / ours:9.0f} keys/s)   {stock_name:32} {stock:6.2f}s   "
              f"ratio {ours / stock:5.2f}")

    print(f"sizes: redis.dump.zst {os.path.getsize(dump) / 1e6:.1f} MB, stock RDB {rdb.stat().st_size / 1e6:.1f} MB")
    row("backup", our_backup, stock_backup, "redis-cli --rdb")
    row("restore", our_load, stock_load, "zstd -dc | redis-cli --pipe")
    print(f"peak RSS: {rss_after_backup:.0f} MB after backup, {peak_rss_mb():.0f} MB after restore")
    subprocess.run(["rm", "-rf", str(work)], check=True)


if __name__ == "__main__":
    main()
