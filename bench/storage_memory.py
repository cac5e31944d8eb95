"""Memory and speed of backups and downloads through local and S3 storage.

Backs up a generated uploads folder (incompressible data, so every byte reaches the storage)
with the real services, then downloads every stored file the way the download view does, and
prints throughput and the peak RSS of the process doing it. Each case runs in a fresh process,
at two sizes, to show that peak memory does not grow with the data. S3 is moto's server in its
own process on a loopback port. Ratios compare with stock tools on the same data: ``tar | zstd``
for the backup and boto3's own ``upload_fileobj`` / ``download_fileobj`` for S3.

    .venv/bin/python bench/storage_memory.py [--size-mb 1024] [--small-mb 256] [--age]
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
BUCKET = "bench-backups"
S3_KEYS = {"BACKUP_S3_ACCESS_KEY_ID": "bench", "BACKUP_S3_SECRET_ACCESS_KEY": "bench-secret",
           "BACKUP_S3_REGION": "us-east-1", "BACKUP_S3_BUCKET": BUCKET}


def peak_rss_mb():
    """This process's peak resident memory (VmHWM). getrusage's ru_maxrss would also count the
    parent's peak, which Linux carries over into a child across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def generate(folder, size_mb):
    """``size_mb`` of random bytes in 64 MB files."""
    folder.mkdir(parents=True)
    left = size_mb
    for number in range(0, size_mb, 64):
        with open(folder / f"part{number:05d}.bin", "wb") as f:
            for _ in range(min(64, left)):
                f.write(os.urandom(MB))
        left -= 64


def child(storage_kind, data_dir):
    """One measured run in this (fresh) process; prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "backupsite.settings"
    import django

    django.setup()
    from backups_app.archive.reader import stored_files
    from backups_app.archive.storage import CHUNK_SIZE, backup_storage, open_stream, set_path
    from backups_app.services.backups import create_backup

    baseline = peak_rss_mb()
    started = time.perf_counter()
    backup = create_backup(["uploads"])
    backup_seconds = time.perf_counter() - started
    if backup.status != "completed":
        raise SystemExit(f"backup failed: {backup.error}")

    storage, digest, downloaded = backup_storage(), hashlib.sha256(), 0
    started = time.perf_counter()
    for name in stored_files(backup.manifest):
        with open_stream(storage, set_path(backup.backup_id, name)) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                downloaded += len(chunk)
    download_seconds = time.perf_counter() - started
    print(json.dumps({"storage": storage_kind, "stored_mb": backup.size_bytes / MB, "baseline_rss_mb": baseline,
                      "backup_s": backup_seconds, "download_s": download_seconds, "downloaded_mb": downloaded / MB,
                      "peak_rss_mb": peak_rss_mb()}))


def stock_times(storage_kind, data_dir, work, endpoint):
    """Seconds for stock tools to do the same work: tar | zstd to a file, then sha256sum of it
    (a download that checks its bytes); for S3 plus boto3's managed upload of that file and a
    plain GET streamed through SHA-256."""
    archive = work / "stock.tar.zst"
    started = time.perf_counter()
    with open(archive, "wb") as out:
        tar = subprocess.Popen(["tar", "-C", str(data_dir), "-cf", "-", "."], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-T0", "-3", "-c"], stdin=tar.stdout, stdout=out, check=True)
        tar.wait()
    up = time.perf_counter() - started
    if storage_kind == "local":
        started = time.perf_counter()
        subprocess.run(["sha256sum", str(archive)], stdout=subprocess.DEVNULL, check=True)
        return up, time.perf_counter() - started
    client = s3_client(endpoint)
    started = time.perf_counter()
    client.upload_file(str(archive), BUCKET, "stock.tar.zst")
    up += time.perf_counter() - started
    started = time.perf_counter()
    body, digest = client.get_object(Bucket=BUCKET, Key="stock.tar.zst")["Body"], hashlib.sha256()
    while chunk := body.read(MB):
        digest.update(chunk)
    return up, time.perf_counter() - started


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                        aws_secret_access_key="bench-secret")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(work):
    port = free_port()
    moto = str(Path(sys.executable).parent / "moto_server")
    # moto keeps objects in temporary files: under the bench's own folder, removed at the end.
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(work)})
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--small-mb", type=int, default=256)
    parser.add_argument("--age", action="store_true", help="encrypt with a generated age key")
    parser.add_argument("--child", nargs=2, metavar=("STORAGE", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None) \
            as tmp:
        work = Path(tmp)
        server, endpoint = start_moto(work)
        env = {**os.environ, "BACKUP_COMPRESSION": "zstd", "BACKUP_HEARTBEAT_SECONDS": "0"}
        if args.age:
            from pyrage import x25519

            identity = x25519.Identity.generate()
            env["BACKUP_AGE_RECIPIENTS"] = str(identity.to_public())
        try:
            print(f"{'storage':8} {'data MB':>8} {'backup MB/s':>12} {'vs stock':>9} {'download MB/s':>14} "
                  f"{'vs stock':>9} {'peak RSS MB':>12} {'(idle RSS)':>11}")
            for size in (args.small_mb, args.size_mb):
                data = work / f"data{size}"
                generate(data, size)
                for kind in ("local", "s3"):
                    run_dir = work / f"{kind}{size}"
                    run_env = {**env, "VAR_DIR": str(run_dir), "BACKUP_DIR": str(run_dir / "backups"),
                               "UPLOADS_DIR": str(data)}
                    if kind == "s3":
                        run_env.update(S3_KEYS, BACKUP_STORAGE="s3", BACKUP_S3_ENDPOINT_URL=endpoint,
                                       BACKUP_S3_PREFIX=f"run{size}")
                    # The app database is migrated beforehand, as a worker finds it; the child measures the run.
                    subprocess.run([sys.executable, "manage.py", "migrate", "-v0", "--skip-checks"], env=run_env,
                                   check=True, cwd=ROOT)
                    out = subprocess.run([sys.executable, __file__, "--child", kind, str(data)], env=run_env,
                                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    stock_up, stock_down = stock_times(kind, data, work, endpoint)
                    (work / "stock.tar.zst").unlink()
                    download_speed = result["downloaded_mb"] / result["download_s"]
                    print(f"{kind:8} {size:8d} {size / result['backup_s']:12.0f} "
                          f"{result['backup_s'] / stock_up:8.2f}x {download_speed:14.0f} "
                          f"{result['download_s'] / stock_down:8.2f}x {result['peak_rss_mb']:12.0f} "
                          f"{result['baseline_rss_mb']:11.0f}", flush=True)
                    shutil.rmtree(run_dir)
            print("'vs stock': our time / the stock tools' time (tar | zstd -T0 and sha256sum; for S3 boto3's "
                  "upload_file and a plain GET). "
                  "Target: peak RSS < 150 MB and the same at both sizes.")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
