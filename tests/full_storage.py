"""A FileSystemStorage on a 'disk' that fills up after a few bytes, to exercise ENOSPC handling
(mounting a real tiny filesystem needs privileges the tests should not assume)."""

import errno

from django.core.files.storage import FileSystemStorage


class FullDiskStorage(FileSystemStorage):
    capacity = 20_000

    def _save(self, name, content):
        written = 0

        class Limited:
            def chunks(self_inner):
                nonlocal written
                for chunk in content.chunks():
                    written += len(chunk)
                    if written > self.capacity:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    yield chunk

        return super()._save(name, _ChunksOnly(Limited()))


class _ChunksOnly:
    def __init__(self, source):
        self._source = source

    def chunks(self):
        return self._source.chunks()
