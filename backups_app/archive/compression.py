"""Compression of the artifacts we produce ourselves (tar streams, exports). pg_dump's custom
format and SQLite files are stored as they are. The method is named by the file extension, so
stock tools know what to do: ``tar --zstd -xf x.tar.zst``, ``tar -xzf x.tar.gz``, ``zstd -d``."""

import gzip
from contextlib import contextmanager

import zstandard
from django.conf import settings

from backups_app.errors import ConfigurationError

EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}


def method():
    chosen = getattr(settings, "BACKUP_COMPRESSION", "zstd")
    if chosen not in EXTENSIONS:
        raise ConfigurationError(f"BACKUP_COMPRESSION={chosen!r} is not supported; use zstd, gzip or none.")
    return chosen


def method_of(name):
    """The method an artifact name says it uses."""
    for chosen, ext in EXTENSIONS.items():
        if ext and name.endswith(ext):
            return chosen
    return "none"


class _Uncloseable:
    """Lets a compressor close (and flush its frame) without closing the sink underneath."""

    def __init__(self, raw):
        self._raw = raw

    def write(self, data):
        return self._raw.write(data)

    def flush(self):
        pass


@contextmanager
def compressing(sink, chosen):
    if chosen == "zstd":
        with zstandard.ZstdCompressor(level=3, threads=-1).stream_writer(_Uncloseable(sink), closefd=False) as out:
            yield out
    elif chosen == "gzip":
        with gzip.GzipFile(fileobj=_Uncloseable(sink), mode="wb", compresslevel=6, mtime=0) as out:
            yield out
    else:
        yield sink


def decompressing(stream, chosen):
    """A readable file of the decompressed bytes of ``stream``."""
    if chosen == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    if chosen == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream
