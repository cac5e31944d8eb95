"""The streamed tar of a backup set, checked with the stock tar and sha256sum binaries."""

import os
import subprocess
import tracemalloc

import pytest
from django.core.files.storage import FileSystemStorage

from backups_app.archive.tarstream import stream_set_tar
from backups_app.archive.writer import BackupSetWriter
from backups_app.errors import BackupError

BACKUP_ID = "backup_20260204_120000"
LONG_NAME = "component_" + "x" * 140 + ".bin"  # past ustar's 100-byte name field: needs a PAX header


@pytest.fixture
def stored_set(tmp_path):
    storage = FileSystemStorage(location=tmp_path / "store")
    writer = BackupSetWriter(storage, BACKUP_ID)
    contents = {"empty.bin": b"", "block.bin": b"b" * 512, "odd.bin": os.urandom(513),
                "big.bin": os.urandom(3 * 1024 * 1024 + 7), LONG_NAME: b"long\n"}
    for name, data in contents.items():
        with writer.open(name) as sink:
            sink.write(data)
    writer.finish({"backup_id": BACKUP_ID})
    names = [*sorted(contents), "SHA256SUMS", "metadata.json"]
    return storage, names, contents


def test_stock_tar_lists_and_extracts_it_and_sha256sum_passes(stored_set, tmp_path):
    storage, names, contents = stored_set
    iterator, length = stream_set_tar(storage, BACKUP_ID, names)
    archive = tmp_path / "set.tar"
    with open(archive, "wb") as f:
        for chunk in iterator:
            f.write(chunk)
    assert archive.stat().st_size == length and length % 10240 == 0

    listing = subprocess.run(["tar", "-tf", archive], check=True, capture_output=True, text=True).stdout
    assert listing.split("\n")[:-1] == [f"{BACKUP_ID}/{n}" for n in names]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", archive, "-C", out], check=True, capture_output=True)
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out / BACKUP_ID, check=True,
                             capture_output=True, text=True).stdout
    assert checked.count(": OK") == len(contents)
    for name, data in contents.items():
        assert (out / BACKUP_ID / name).read_bytes() == data


def test_a_file_that_changes_size_while_streaming_aborts_the_stream(stored_set):
    storage, names, _contents = stored_set
    iterator, _length = stream_set_tar(storage, BACKUP_ID, names)
    next(iterator)  # the first header is out; now the file grows behind the stream's back
    with open(storage.path(f"{BACKUP_ID}/big.bin"), "ab") as f:
        f.write(b"more")
    with pytest.raises(BackupError, match="changed while it was being sent"):
        list(iterator)


def test_memory_stays_flat_whatever_the_size(stored_set):
    storage, names, _contents = stored_set
    iterator, length = stream_set_tar(storage, BACKUP_ID, names)
    tracemalloc.start()
    try:
        sent = sum(len(chunk) for chunk in iterator)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent == length
    assert peak < 3 * 1024 * 1024  # chunks of 1 MiB, never the 3 MiB file at once
