"""The one place that touches the backup storage (django-storages underneath).

Everything streams: writes go through a pipe into ``Storage.save`` and reads use the storage's
file object chunk by chunk, so memory stays flat whatever the artifact size.
"""

import os
import posixpath
import threading

from django.core.files import File
from django.core.files.storage import storages

from backups_app.errors import BackupError

CHUNK_SIZE = 1024 * 1024


def backup_storage():
    return storages["backups"]


def set_path(backup_id, name):
    return posixpath.join(backup_id, name)


def open_stream(storage, path):
    """A binary file object reading ``path`` from the start, in chunks."""
    return storage.open(path, "rb")


class PipeUpload:
    """A writable file whose bytes are saved to ``storage`` at ``path`` by a background thread,
    so producers that push (tarfile, our own loops) and storages that pull can meet without a
    temporary copy."""

    def __init__(self, storage, path):
        self.path = path
        read_fd, write_fd = os.pipe()
        self._writer = os.fdopen(write_fd, "wb", buffering=CHUNK_SIZE)
        self._error = None
        self._thread = threading.Thread(
            target=self._save, args=(storage, path, os.fdopen(read_fd, "rb")), daemon=True
        )
        self._thread.start()

    def _save(self, storage, path, reader):
        try:
            with reader:
                saved = storage.save(path, File(reader, name=posixpath.basename(path)))
                if saved != path:
                    raise BackupError(f"Storage saved {path} as {saved}: the name was taken.")
                reader.read()  # drain, so the producer never blocks on a full pipe
        except BaseException as exc:  # re-raised in the producer's thread by close()
            self._error = exc

    def write(self, data):
        try:
            return self._writer.write(data)
        except BrokenPipeError:
            self._thread.join()
            raise self._storage_error() from None

    def close(self):
        try:
            self._writer.close()
        except BrokenPipeError:
            pass
        self._thread.join()
        if self._error is not None:
            raise self._storage_error()

    def abort(self):
        try:
            self._writer.close()
        except OSError:
            pass
        self._thread.join()

    def _storage_error(self):
        if isinstance(self._error, BackupError):
            return self._error
        return BackupError(f"Could not store {self.path}: {self._error}")


def delete_set(storage, backup_id):
    """Remove every file stored under the backup's prefix (partial sets included)."""
    try:
        _, files = storage.listdir(backup_id)
    except FileNotFoundError:
        return
    for name in files:
        storage.delete(set_path(backup_id, name))
    # FileSystemStorage leaves the empty folder behind; object stores have none.
    location = getattr(storage, "location", None)
    if location:
        folder = os.path.join(location, backup_id)
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
