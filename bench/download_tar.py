"""Streamed set download (archive/tarstream.py) against stock ``tar -cf -`` on the same files.

    .venv/bin/python bench/download_tar.py [SIZE_MB]

Prints throughput of both, the time ratio, and how much the process's peak RSS grew while
streaming (it must not grow with SIZE_MB)."""

import os
import resource
import subprocess
import sys
import tempfile
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupsite.settings")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
django.setup()

from django.core.files.storage import FileSystemStorage  # noqa: E402

from backups_app.archive.storage import CHUNK_SIZE  # noqa: E402
from backups_app.archive.tarstream import stream_set_tar  # noqa: E402

BACKUP_ID = "backup_20260204_120000"


def make_set(root, size_mb):
    folder = os.path.join(root, BACKUP_ID)
    os.makedirs(folder)
    block = os.urandom(CHUNK_SIZE)
    names = []
    for i, share in enumerate((size_mb // 2, size_mb // 4, size_mb - size_mb // 2 - size_mb // 4)):
        name = f"artifact_{i}.bin"
        with open(os.path.join(folder, name), "wb") as f:
            for _ in range(share):
                f.write(block)
        names.append(name)
    return names


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    with tempfile.TemporaryDirectory() as root:
        names = make_set(root, size_mb)
        storage = FileSystemStorage(location=root)

        before = peak_rss_mb()
        start = time.perf_counter()
        iterator, length = stream_set_tar(storage, BACKUP_ID, names)
        sent = sum(len(chunk) for chunk in iterator)
        ours = time.perf_counter() - start
        growth = peak_rss_mb() - before
        assert sent == length

        start = time.perf_counter()
        tar = subprocess.Popen(["tar", "-cf", "-", "-C", root, BACKUP_ID], stdout=subprocess.PIPE)
        while tar.stdout.read(CHUNK_SIZE):
            pass
        tar.wait()
        stock = time.perf_counter() - start

    print(f"set of {size_mb} MiB: tarstream {size_mb / ours:.0f} MiB/s, stock tar {size_mb / stock:.0f} MiB/s, "
          f"time ratio {ours / stock:.2f}x; peak RSS grew {growth:.1f} MiB while streaming")


if __name__ == "__main__":
    main()
