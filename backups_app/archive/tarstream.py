"""A backup set as one plain tar stream, built on the fly: no temporary copy, constant memory.

The length is known before the first byte (headers are built up front from the stored sizes), so
a download can send Content-Length. Members sit under ``<backup_id>/``, so ``tar -xf`` followed
by ``cd <backup_id> && sha256sum -c SHA256SUMS`` checks the download with stock tools.
"""

import tarfile
import time

from backups_app.archive.storage import CHUNK_SIZE, open_stream, set_path
from backups_app.errors import BackupError

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE  # tar pads the whole archive to a multiple of this, as GNU tar does


def _padding(size, unit):
    return -size % unit


def stream_file(storage, path, size):
    """Yield the stored file's bytes in chunks, refusing to send more or less than ``size`` (a
    file changed since its size was read would corrupt the stream silently otherwise)."""
    sent = 0
    with open_stream(storage, path) as f:
        while chunk := f.read(min(CHUNK_SIZE, size - sent + 1)):
            sent += len(chunk)
            if sent > size:
                break
            yield chunk
    if sent != size:
        raise BackupError(f"{path} changed while it was being sent ({sent} bytes instead of {size}).")


def stream_set_tar(storage, backup_id, names, mtime=None):
    """``(iterator, content_length)`` of a tar holding ``names`` (files of the set) as
    ``<backup_id>/<name>``. With a fixed ``mtime`` (epoch seconds) every download of a set is
    byte-identical."""
    mtime = int(time.time() if mtime is None else mtime)
    members = []
    for name in names:
        path = set_path(backup_id, name)
        info = tarfile.TarInfo(set_path(backup_id, name))
        info.size = storage.size(path)
        info.mtime = mtime
        info.mode = 0o644
        members.append((path, info.size, info.tobuf(format=tarfile.PAX_FORMAT)))
    body = sum(len(header) + size + _padding(size, BLOCK) for _path, size, header in members) + 2 * BLOCK
    length = body + _padding(body, RECORD)

    def generate():
        for path, size, header in members:
            yield header
            yield from stream_file(storage, path, size)
            yield b"\0" * _padding(size, BLOCK)
        yield b"\0" * (length - body + 2 * BLOCK)

    return generate(), length
