"""SHA-256 while data passes through: the one way artifacts, objects and files are hashed."""

import hashlib

CHUNK_SIZE = 1024 * 1024


class HashingReader:
    """Reads through to ``raw``, hashing and counting what it returns."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size=-1):
        data = self._raw.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def close(self):
        self._raw.close()

    def hexdigest(self):
        return self.sha256.hexdigest()


class HashingWriter:
    """Writes through to ``raw``, hashing and counting what passes."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha256.update(data)
        self.size += len(data)
        self._raw.write(data)
        return len(data)

    def flush(self):
        pass

    def hexdigest(self):
        return self.sha256.hexdigest()


def sha256_stream(stream):
    """The hex SHA-256 of everything left in ``stream``, read in chunks."""
    reader = HashingReader(stream)
    while reader.read(CHUNK_SIZE):
        pass
    return reader.hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_stream(f)
