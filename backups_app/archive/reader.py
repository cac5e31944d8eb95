"""Reads a stored backup set, checking every byte against the manifest's SHA-256."""

import hashlib
import json

from backups_app.archive import compression
from backups_app.archive.ids import validate_artifact_name
from backups_app.archive.storage import CHUNK_SIZE, open_stream, set_path
from backups_app.archive.writer import MANIFEST_NAME
from backups_app.errors import BackupError, ChecksumMismatch, NotFound


def load_manifest(storage, backup_id):
    path = set_path(backup_id, MANIFEST_NAME)
    try:
        with open_stream(storage, path) as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"Backup {backup_id} has no {MANIFEST_NAME} in storage: it is incomplete or was deleted.")
    except (OSError, ValueError) as exc:
        raise BackupError(f"Could not read {path}: {exc}") from exc


class VerifyingStream:
    """A read-only file over one artifact; raises ChecksumMismatch when the end is reached with
    a different hash or size than the manifest recorded."""

    def __init__(self, raw, name, expected):
        self._raw = raw
        self.name = name
        self._expected = expected
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._checked = False

    def read(self, size=CHUNK_SIZE):
        if size is None or size < 0:
            size = CHUNK_SIZE
        data = self._raw.read(size)
        if data:
            self._sha256.update(data)
            self._size += len(data)
        elif not self._checked:
            self._check()
        return data

    def _check(self):
        self._checked = True
        actual = self._sha256.hexdigest()
        if actual != self._expected["sha256"] or self._size != self._expected["size"]:
            raise ChecksumMismatch(
                f"Artifact {self.name} does not match its manifest (sha256 {actual[:12]}…, {self._size} bytes; "
                f"expected {self._expected['sha256'][:12]}…, {self._expected['size']} bytes). "
                "The stored copy is damaged or was changed; restore from another backup."
            )

    def readable(self):
        return True

    def close(self):
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BackupSetReader:
    def __init__(self, storage, backup_id, manifest):
        self.storage = storage
        self.backup_id = backup_id
        self.manifest = manifest

    def artifacts_of(self, component):
        return sorted(n for n, meta in self.manifest.get("artifacts", {}).items() if meta["component"] == component)

    def facts_of(self, component):
        """What ``backup()`` returned for the component (counts, versions, ``absent`` markers)."""
        return self.manifest.get("components", {}).get(component, {})

    def open(self, name):
        validate_artifact_name(name)
        expected = self.manifest.get("artifacts", {}).get(name)
        if expected is None:
            raise NotFound(f"Backup {self.backup_id} has no artifact {name!r}.")
        try:
            raw = open_stream(self.storage, set_path(self.backup_id, name))
        except FileNotFoundError:
            raise NotFound(f"Artifact {name} of {self.backup_id} is missing from storage.")
        return VerifyingStream(raw, name, expected)

    def open_decompressed(self, name):
        """The artifact's plain bytes, decompressed by the method its name shows; the checksum is
        still checked on the stored bytes."""
        return compression.decompressing(self.open(name), compression.method_of(name))

    def verify(self, names=None):
        """Stream each artifact through its hash. Returns {name: None | error text}."""
        results = {}
        for name in names if names is not None else sorted(self.manifest.get("artifacts", {})):
            try:
                with self.open(name) as stream:
                    while stream.read(CHUNK_SIZE):
                        pass
                results[name] = None
            except (BackupError, OSError) as exc:
                results[name] = str(exc)
        return results
