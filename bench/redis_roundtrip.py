#!/usr/bin/env python
"""Our Redis logical backup and restore against stock redis-cli, on the same data in one run.

    .venv/bin/python bench/redis_roundtrip.py [--keys 1000000] [--pairs 5] [--json] [--quick]

Starts a private redis-server on a free loopback port (never touches the shared one), fills it
with KEYS keys (strings, hashes, lists, sets, sorted sets, some with TTLs, over three dbs), then
times:

  stock backup    redis-cli --rdb FILE                      (the server's own snapshot over SYNC)
  our backup      RedisComponent.backup()                   (SCAN + DUMP/PTTL -> RESP, zstd, SHA-256)
  stock restore   zstd -dc redis.dump.zst | redis-cli --pipe  (our artifact, replayed by the stock client)
  our restore     RedisComponent.restore(mode=exact)        (FLUSHDB + pipelined RESTORE ... ABSTTL)

each ``--pairs`` times (A B A B), and prints the contract's rows (bench/contract.py): keys/s,
medians with min-max, ratios ours/stock, and the peak RSS of this process (the data is filled in a
child process, so it is the backup's and restore's own). Two more rows give the server's own
ceiling: keys / the redis-server's CPU seconds (INFO cpu) during our dump and our load. A logical
dump costs the server a SCAN, a DUMP and a PEXPIRETIME per key, so no client dumps faster than
that, whatever it does.
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

from backups_app.archive.metering import NO_METER  # noqa: E402
from backups_app.archive.reader import BackupSetReader  # noqa: E402
from backups_app.archive.writer import BackupSetWriter  # noqa: E402
from backups_app.components.redis import RedisComponent  # noqa: E402
from bench import contract  # noqa: E402
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


def quiet(line):
    pass


def run_quietly(argv):
    subprocess.run(argv, check=True, capture_output=True)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def server_cpu(client):
    cpu = client.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def on_the_server(client, fn, *args):
    """(wall seconds, the redis-server's CPU seconds meanwhile, result) of ``fn(*args)``."""
    before = server_cpu(client)
    seconds, result = timed(fn, *args)
    return seconds, server_cpu(client) - before, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--fill", nargs=2, metavar=("URL", "KEYS"), help=argparse.SUPPRESS)
    contract.add_arguments(parser)
    args = parser.parse_args()
    if args.fill:  # in a child process: its memory is not this one's peak RSS
        fill(args.fill[0], int(args.fill[1]))
        return
    keys, pairs = (20_000, 2) if args.quick else (args.keys, args.pairs)
    work = Path(tempfile.mkdtemp(prefix="redis-bench-"))
    storage = FileSystemStorage(location=str(work / "backups"))
    samples = {"our dump": [], "our load": [], "stock dump": [], "stock load": []}
    server_bound = {"dump": [], "load": []}  # keys per second of the server's own CPU: the ceiling

    with redis_server("--repl-diskless-sync-delay", "0") as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        subprocess.run([sys.executable, __file__, "--fill", url, str(keys)], check=True)
        component = RedisComponent("redis", {"url": url})
        server = redis.Redis.from_url(url)
        print(f"{keys} keys in db 0-2; RSS {peak_rss_mb():.0f} MB", file=sys.stderr)
        for n in range(pairs):
            backup_id = f"backup_20000101_0000{n:02d}"
            rdb = work / "stock.rdb"
            seconds, _ = timed(run_quietly, ["redis-cli", "-p", port, "--rdb", str(rdb)])
            samples["stock dump"].append(keys / seconds)
            writer = BackupSetWriter(storage, backup_id).for_component("redis", NO_METER)
            seconds, cpu, facts = on_the_server(server, component.backup, writer, quiet)
            samples["our dump"].append(keys / seconds)
            server_bound["dump"].append(keys / cpu)
            manifest = writer.finish({"components": {"redis": facts}})
            assert sum(facts["counts"].values()) == keys, facts["counts"]
            dump = storage.path(f"{backup_id}/{next(iter(manifest['artifacts']))}")

            def stock_restore(dump):
                redis.Redis(port=int(port)).flushall()
                unpacked = subprocess.Popen(["zstd", "-dcq", dump], stdout=subprocess.PIPE)
                subprocess.run(["redis-cli", "-p", port, "--pipe"], stdin=unpacked.stdout, check=True,
                               capture_output=True)
                unpacked.wait()

            seconds, _ = timed(stock_restore, dump)
            samples["stock load"].append(keys / seconds)
            reader = BackupSetReader(storage, backup_id, manifest)
            seconds, cpu, _ = on_the_server(server, component.restore, reader, list(manifest["artifacts"]),
                                            component.parse_restore_options({}), quiet)
            samples["our load"].append(keys / seconds)
            server_bound["load"].append(keys / cpu)
            assert component.inspect() == facts["counts"]
            print(f"pair {n + 1}/{pairs}: " + ", ".join(f"{k} {v[-1]:,.0f} keys/s" for k, v in samples.items()),
                  file=sys.stderr)
            subprocess.run(["rm", "-rf", str(work / "backups" / backup_id)], check=True)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    got = {name: contract.spread(values) for name, values in samples.items()}
    rss = peak_rss_mb()
    ceiling = {step: contract.spread(values) for step, values in server_bound.items()}
    rows = [
        contract.row(f"Redis dump, {keys:,} keys (keys/s; stock: redis-cli --rdb)", got["our dump"],
                     stock=got["stock dump"], ratio=contract.ratio(got["our dump"], got["stock dump"]),
                     goal=">= 300k keys/s", met=contract.middle(got["our dump"]) >= 300_000),
        contract.row(f"Redis load, {keys:,} keys (keys/s; stock: zstd -dc into redis-cli --pipe)", got["our load"],
                     stock=got["stock load"], ratio=contract.ratio(got["our load"], got["stock load"]),
                     goal=">= 300k keys/s", met=contract.middle(got["our load"]) >= 300_000),
        *(contract.row(f"Redis {step}, {keys:,} keys: the server's own ceiling (keys/s = keys / redis-server CPU "
                       f"seconds during our {step}; no client can go faster)", ceiling[step]) for step in ceiling),
        contract.row(f"Redis dump + load, {keys:,} keys: peak RSS of the process (MiB)", rss,
                     goal="<= 120 MiB", met=rss <= 120),
    ]
    contract.emit(rows, args.json)


if __name__ == "__main__":
    main()
