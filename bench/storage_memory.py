#!/usr/bin/env python
"""S3 backup + download: peak RSS flat with size, and time against boto3's own upload_file / GET.

    .venv/bin/python bench/storage_memory.py [--sizes 1024,4096] [--pairs N] [--age] [--json] [--quick]

S3 is moto's server (``moto_server``, a real HTTP endpoint on loopback, in its own process). For
each size (full: 1 GiB and 4 GiB; ``--quick``: 64 and 256 MiB) an uploads folder of random bytes
(incompressible, so every byte reaches S3) is generated, then pairs of runs are interleaved, each
run a fresh process:

- ours: ``create_backup(["uploads"])`` (tar, zstd, SHA-256, our multipart upload) and then the
  download of every artifact through ``BackupSetReader.verify()`` (a streamed GET checked against
  the manifest's SHA-256). The process reports its own peak RSS (VmHWM) and its idle RSS (after
  Django's set-up and the S3 client's creation, before the backup: the floor).
- stock: ``tar -cf - | zstd -T0 -3`` into a file, boto3's ``upload_file`` of it, then a plain
  ``get_object`` streamed through SHA-256 (boto3 in a bare Python process).

Every object is deleted after its run (moto keeps them). Rows: the peak RSS of ours at each size
(goal <= 120 MiB and flat: the largest size's median within 5 MiB of the smallest's), and the backup
and download times, ratio = ours time / stock time (goal <= 1.1). Pairs: 5, or 3 above 1 GiB
(a 4 GiB pair takes several minutes at moto's speed); the figures say how many.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import contract  # noqa: E402

MIB = 1024 * 1024
BUCKET = "bench-backups"
KEYS = {"BACKUP_S3_ACCESS_KEY_ID": "bench", "BACKUP_S3_SECRET_ACCESS_KEY": "bench-secret",
        "BACKUP_S3_REGION": "us-east-1", "BACKUP_S3_BUCKET": BUCKET}
RSS_GOAL, FLAT_MIB, TIME_GOAL = 120, 5, 1.1


def status_mib(field):
    """VmHWM (peak) or VmRSS of this process alone: getrusage's ru_maxrss would also count the
    pages of the parent this process was forked from."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEYS[
        "BACKUP_S3_ACCESS_KEY_ID"], aws_secret_access_key=KEYS["BACKUP_S3_SECRET_ACCESS_KEY"])


def ours(endpoint):
    """One backup + download in this fresh process; prints one JSON line."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "backupsite.settings"
    import django

    django.setup()
    from backups_app.archive.reader import BackupSetReader
    from backups_app.archive.storage import _s3_client, backup_storage
    from backups_app.services.backups import create_backup, delete_backup

    storage = backup_storage()
    _s3_client(storage)  # the one client of the storage and its service model: part of the floor
    idle = status_mib("VmRSS")
    started = time.perf_counter()
    backup = create_backup(["uploads"])
    backup_s = time.perf_counter() - started
    if backup.status != "completed":
        raise SystemExit(f"backup failed: {backup.error}")
    started = time.perf_counter()
    failures = {name: error for name, error in BackupSetReader(storage, backup.backup_id, backup.manifest)
                .verify().items() if error}
    download_s = time.perf_counter() - started
    if failures:
        raise SystemExit(f"download failed: {failures}")
    peak = status_mib("VmHWM")
    delete_backup(backup.backup_id)
    print(json.dumps({"backup_s": backup_s, "download_s": download_s, "peak_mib": peak, "idle_mib": idle,
                      "stored_mib": backup.size_bytes / MIB, "cpu_s": contract.cpu_seconds()}))


def stock(endpoint, data, archive):
    """tar | zstd into a file, boto3's upload_file, a plain GET through SHA-256; one JSON line."""
    import hashlib

    client = s3_client(endpoint)
    started = time.perf_counter()
    with open(archive, "wb") as out:
        tar = subprocess.Popen(["tar", "-C", data, "-cf", "-", "."], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-T0", "-3", "-c"], stdin=tar.stdout, stdout=out, check=True)
        if tar.wait():
            raise SystemExit("tar failed")
    client.upload_file(archive, BUCKET, "stock.tar.zst")
    backup_s = time.perf_counter() - started
    os.unlink(archive)
    started = time.perf_counter()
    body, digest = client.get_object(Bucket=BUCKET, Key="stock.tar.zst")["Body"], hashlib.sha256()
    while chunk := body.read(MIB):
        digest.update(chunk)
    download_s = time.perf_counter() - started
    peak = status_mib("VmHWM")
    client.delete_object(Bucket=BUCKET, Key="stock.tar.zst")
    print(json.dumps({"backup_s": backup_s, "download_s": download_s, "peak_mib": peak,
                      "cpu_s": contract.cpu_seconds()}))


def generate(folder, size_mib):
    """``size_mib`` of random bytes in files of 64 MiB."""
    folder.mkdir(parents=True)
    for number, start in enumerate(range(0, size_mib, 64)):
        with open(folder / f"part{number:05d}.bin", "wb") as f:
            for _ in range(min(64, size_mib - start)):
                f.write(os.urandom(MIB))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(work):
    """moto's server on a free loopback port, objects spilled to temporary files under ``work``."""
    port = free_port()
    argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "TMPDIR": str(work)})
    endpoint = f"http://127.0.0.1:{port}"
    client = s3_client(endpoint)
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            return server, endpoint
        except Exception:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto_server did not start")


class Run:
    """One side's run as a fresh process; keeps the JSON it printed and returns a Sample."""

    def __init__(self, argv, env):
        self.argv, self.env, self.results = argv, env, []

    def __call__(self):
        out = subprocess.run(self.argv, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if out.returncode:
            raise SystemExit(f"{' '.join(self.argv[1:4])} failed with exit {out.returncode}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        self.results.append(result)
        return contract.Sample(result["backup_s"] + result["download_s"], result["cpu_s"], result["peak_mib"])

    def spread(self, field):
        return contract.spread([result[field] for result in self.results])


def label(size_mib):
    return f"{size_mib // 1024} GiB" if size_mib >= 1024 and size_mib % 1024 == 0 else f"{size_mib} MiB"


def measure(size, pairs, work, endpoint, env):
    data = work / f"data{size}"
    generate(data, size)
    print(f"== {label(size)}: {pairs} pairs", file=sys.stderr, flush=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    sides = {"ours": Run([*me, "--child-ours", endpoint], {**env, "UPLOADS_DIR": str(data)}),
             "stock": Run([*me, "--child-stock", endpoint, str(data), str(work / "stock.tar.zst")], env)}
    try:
        contract.interleave(pairs, sides)
    finally:
        shutil.rmtree(data)
    return sides


def rows_for(measured, pairs):
    rows, smallest = [], None
    for size, sides in measured.items():
        ours_side, stock_side = sides["ours"], sides["stock"]
        peak = ours_side.spread("peak_mib")
        smallest = smallest or peak
        flat = peak["median"] <= smallest["median"] + FLAT_MIB
        idle = ours_side.spread("idle_mib")["median"]
        rows.append(contract.row(
            f"S3 backup+download {label(size)}, peak RSS (MiB) of the process; stock: boto3 upload_file + GET "
            f"in a bare Python process; idle (Django + S3 client) {idle:.0f} MiB; {pairs[size]} pairs",
            peak, stock=stock_side.spread("peak_mib"), goal=f"<= {RSS_GOAL}, flat",
            met=peak["max"] <= RSS_GOAL and flat))
        for step, stock_does in (("backup", "tar piped to zstd -T0 into a file, then boto3 upload_file"),
                                 ("download", "boto3 get_object streamed through SHA-256")):
            field = f"{step}_s"
            ours_time, stock_time = ours_side.spread(field), stock_side.spread(field)
            ratio = contract.ratio(ours_time, stock_time)
            rows.append(contract.row(
                f"S3 {step} {label(size)}, wall (s); stock: {stock_does}; ratio: ours time / stock time; "
                f"{pairs[size]} pairs", ours_time, stock=stock_time, ratio=ratio,
                goal=f"within {TIME_GOAL}x boto3", met=ratio <= TIME_GOAL))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated sizes in MiB (default 1024,4096; --quick 64,256)")
    parser.add_argument("--pairs", type=int, help="interleaved pairs per size (default 5, 3 above 1 GiB; --quick 1)")
    parser.add_argument("--age", action="store_true", help="encrypt with a generated age key")
    parser.add_argument("--child-ours", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--child-stock", nargs=3, metavar=("ENDPOINT", "DATA", "ARCHIVE"), help=argparse.SUPPRESS)
    contract.add_arguments(parser)
    args = parser.parse_args()
    if args.child_ours:
        return ours(args.child_ours)
    if args.child_stock:
        return stock(*args.child_stock)

    sizes = [int(s) for s in (args.sizes or ("64,256" if args.quick else "1024,4096")).split(",")]
    pairs = {size: args.pairs or (1 if args.quick else 5 if size <= 1024 else 3) for size in sizes}
    with tempfile.TemporaryDirectory(prefix="bench-s3-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None) \
            as tmp:
        work = Path(tmp)
        server, endpoint = start_moto(work)
        env = {**os.environ, **KEYS, "VAR_DIR": str(work / "var"), "BACKUP_STORAGE": "s3",
               "BACKUP_S3_ENDPOINT_URL": endpoint, "BACKUP_COMPRESSION": "zstd", "BACKUP_HEARTBEAT_SECONDS": "0"}
        if args.age:
            from pyrage import x25519

            env["BACKUP_AGE_RECIPIENTS"] = str(x25519.Identity.generate().to_public())
        try:
            # The app database is migrated beforehand, as a worker finds it.
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0", "--skip-checks"], env=env, check=True,
                           cwd=ROOT, stdout=subprocess.DEVNULL)
            measured = {size: measure(size, pairs[size], work, endpoint, env) for size in sizes}
        finally:
            server.terminate()
            server.wait()
    contract.emit(rows_for(measured, pairs), args.json)


if __name__ == "__main__":
    main()
