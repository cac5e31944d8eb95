"""Qdrant snapshot streaming (components/qdrant.py) against stock curl, both ways, on one snapshot
served by the loopback Qdrant stand-in from the tests (run in its own process, so it costs both
sides the same).

    .venv/bin/python bench/qdrant_snapshot.py [SIZE_MB]

Prints throughput of ours and the stock tools' download (into the backup set, hashed / `curl | tee
FILE | sha256sum`) and upload (streamed multipart / `curl -F`), the time ratios, and how much this
process's peak RSS grew (it must not grow with SIZE_MB)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import django

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupsite.settings")
sys.path.insert(0, ROOT)
django.setup()

from django.core.files.storage import FileSystemStorage  # noqa: E402

from backups_app.archive.reader import BackupSetReader  # noqa: E402
from backups_app.archive.writer import BackupSetWriter  # noqa: E402
from backups_app.components.qdrant import SnapshotMethod  # noqa: E402

BACKUP_ID = "backup_20260204_120000"
SERVER = """
import sys, time
from tests.components.fake_qdrant import FakeQdrant
fake = FakeQdrant()
fake.add("big", points=1000, size=int(sys.argv[1]) * 2**20)
print(fake.url, fake.collections["big"]["sha256"], flush=True)
time.sleep(3600)
"""


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def download_and_hash(url, path):
    """What the backup does, with stock tools: curl URL | tee FILE | sha256sum."""
    curl = subprocess.Popen(["curl", "-sSf", url], stdout=subprocess.PIPE)
    tee = subprocess.Popen(["tee", path], stdin=curl.stdout, stdout=subprocess.PIPE)
    curl.stdout.close()
    digest = subprocess.run(["sha256sum"], stdin=tee.stdout, capture_output=True, check=True).stdout
    tee.stdout.close()
    assert curl.wait() == 0 and tee.wait() == 0
    return digest


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(size_mb)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url, sha256 = server.stdout.readline().split()
        with tempfile.TemporaryDirectory() as root:
            storage = FileSystemStorage(location=root)
            store = SnapshotMethod(url, "", 600)
            before = vm_hwm_mb()

            writer = BackupSetWriter(storage, BACKUP_ID)
            ours_down, (name, _points) = timed(lambda: store.backup_collection(writer, "qdrant_big", "big", False,
                                                                              print))
            assert writer.artifacts[name]["sha256"] == sha256
            reader = BackupSetReader(storage, BACKUP_ID, {"artifacts": writer.artifacts})
            ours_up, _ = timed(lambda: store.restore_collection(reader, name, "copy"))
            growth = vm_hwm_mb() - before
            store.close()

            path = os.path.join(root, BACKUP_ID, name)
            created = subprocess.run(["curl", "-sSf", "-X", "POST", f"{url}/collections/big/snapshots?wait=true"],
                                     check=True, capture_output=True).stdout
            snapshot = f"{url}/collections/big/snapshots/{json.loads(created)['result']['name']}"
            curl_down, _ = timed(lambda: download_and_hash(snapshot, os.path.join(root, "curl.snapshot")))
            curl_up, _ = timed(lambda: subprocess.run(
                ["curl", "-sSf", "-X", "POST", "-F", f"snapshot=@{path}",
                 f"{url}/collections/copy2/snapshots/upload?priority=snapshot&checksum={sha256}"],
                check=True, capture_output=True))
    finally:
        server.kill()
        server.wait()

    print(f"snapshot of {size_mb} MiB: download ours {size_mb / ours_down:.0f} MiB/s, curl {size_mb / curl_down:.0f} "
          f"MiB/s, time ratio {ours_down / curl_down:.2f}x; upload ours {size_mb / ours_up:.0f} MiB/s, curl "
          f"{size_mb / curl_up:.0f} MiB/s, time ratio {ours_up / curl_up:.2f}x; peak RSS grew {growth:.1f} MiB")


if __name__ == "__main__":
    main()
