"""Reads a stored backup set, checking every byte against the manifest's SHA-256: the stored
bytes first, then, for an encrypted artifact, the decrypted bytes against the plaintext hash."""

import json
import re

from backups_app.archive import compression, crypto, signing
from backups_app.archive.hashing import HashingReader
from backups_app.archive.ids import validate_artifact_name
from backups_app.archive.storage import CHUNK_SIZE, open_stream, set_path
from backups_app.archive.writer import MANIFEST_NAME, SUMS_NAME
from backups_app.errors import BackupError, ChecksumMismatch, NotFound


class MalformedManifest(BackupError):
    """A stored metadata.json this app did not write (or someone edited): refused, never trusted."""


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def validate_manifest(backup_id, manifest):
    """Raise MalformedManifest unless ``manifest`` has the shape the writer gives it: components and
    artifacts objects, every artifact of a known component with a plain file name, a 64-hex sha256
    and a size. Returns it."""
    def refuse(problem):
        raise MalformedManifest(f"Backup {backup_id}: its {MANIFEST_NAME} is malformed ({problem}); it is refused. "
                                "Restore another backup, or the set's offsite copy.")

    if not isinstance(manifest, dict):
        refuse(f"a JSON {type(manifest).__name__}, not an object")
    components, artifacts = manifest.get("components"), manifest.get("artifacts")
    if not isinstance(components, dict) or not all(isinstance(v, dict) for v in components.values()):
        refuse("no components object")
    if not isinstance(artifacts, dict):
        refuse("no artifacts object")
    for name, meta in artifacts.items():
        if not isinstance(meta, dict):
            refuse(f"artifact {name!r} is not an object")
        for file in (name, meta.get("file", name)):
            try:
                validate_artifact_name(file)
            except BackupError:
                refuse(f"artifact file name {file!r} is not a plain file name")
        if not isinstance(meta.get("sha256"), str) or not SHA256_HEX.fullmatch(meta["sha256"]):
            refuse(f"artifact {name!r} has no 64-hex-digit sha256")
        if not isinstance(meta.get("size"), int) or meta["size"] < 0:
            refuse(f"artifact {name!r} has no size")
        if meta.get("component") not in components:
            refuse(f"artifact {name!r} belongs to no component of the set")
    return manifest


def load_manifest(storage, backup_id):
    path = set_path(backup_id, MANIFEST_NAME)
    try:
        with open_stream(storage, path) as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"Backup {backup_id} has no {MANIFEST_NAME} in storage: it is incomplete or was deleted.")
    except (OSError, ValueError) as exc:
        raise BackupError(f"Could not read {path}: {exc}") from exc
    return validate_manifest(backup_id, manifest)


TAIL_TO_CHECK = CHUNK_SIZE


class VerifyingStream:
    """A read-only file over one artifact; raises ChecksumMismatch when the end is reached with
    a different hash or size than the manifest recorded."""

    def __init__(self, raw, name, sha256, size):
        self._raw = HashingReader(raw)
        self.name = name
        self._expected = {"sha256": sha256, "size": size}
        self._checked = False
        self.error = None

    def read(self, size=CHUNK_SIZE):
        if size is None or size < 0:
            size = CHUNK_SIZE
        data = self._raw.read(size)
        if not data and not self._checked:
            self._check()
        return data

    def _check(self):
        self._checked = True
        actual, size = self._raw.hexdigest(), self._raw.size
        if actual != self._expected["sha256"] or size != self._expected["size"]:
            self.error = ChecksumMismatch(
                f"Artifact {self.name} does not match its manifest (sha256 {actual[:12]}…, {size} bytes; "
                f"expected {self._expected['sha256'][:12]}…, {self._expected['size']} bytes). "
                "The stored copy is damaged or was changed; restore from another copy or backup."
            )
            raise self.error

    def readable(self):
        return True

    def close(self):
        """Readers such as tar stop at their own end marker, before the artifact's last bytes: a
        short tail is read here so the checksum is still checked. A consumer that stopped far
        from the end failed on its own; its error is the one that matters."""
        try:
            if not self._checked and self._expected["size"] - self._raw.size <= TAIL_TO_CHECK:
                while self.read(CHUNK_SIZE):
                    pass
        finally:
            self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BackupSetReader:
    def __init__(self, storage, backup_id, manifest, copy="primary"):
        self.storage = storage
        self.backup_id = backup_id
        self.manifest = manifest
        self.copy = copy  # "primary" or "offsite": which stored copy this reads

    def artifacts_of(self, component):
        return sorted(n for n, meta in self.manifest.get("artifacts", {}).items() if meta["component"] == component)

    def facts_of(self, component):
        """What ``backup()`` returned for the component (counts, versions, ``absent`` markers)."""
        return self.manifest.get("components", {}).get(component, {})

    def meta(self, name):
        validate_artifact_name(name)
        meta = self.manifest.get("artifacts", {}).get(name)
        if meta is None:
            raise NotFound(f"Backup {self.backup_id} has no artifact {name!r}.")
        return meta

    def stored_file(self, name):
        """The file name artifact ``name`` is stored under (``<name>.age`` when encrypted)."""
        return self.meta(name).get("file", name)

    def open_stored(self, name):
        """The stored bytes of artifact ``name`` (encrypted, if it is), checked against SHA256SUMS."""
        meta, file = self.meta(name), self.stored_file(name)
        try:
            raw = open_stream(self.storage, set_path(self.backup_id, file))
        except FileNotFoundError:
            raise NotFound(f"Artifact {file} of {self.backup_id} is missing from the {self.copy} storage.")
        return VerifyingStream(raw, file, meta["sha256"], meta["size"])

    def open(self, name):
        """The artifact's bytes as the component wrote them: decrypted when stored encrypted (the
        identity comes from BACKUP_AGE_IDENTITY_FILE), and checked both before and after."""
        meta = self.meta(name)
        if not meta.get("encryption"):
            return self.open_stored(name)
        keys = crypto.identities()
        stored = self.open_stored(name)
        recipients_used = (self.manifest.get("encryption") or {}).get("recipients", [])
        plain = crypto.decrypting(stored, keys, name, recipients_used, lambda: stored.error)
        return VerifyingStream(plain, name, meta["plaintext_sha256"], meta["plaintext_size"])

    def open_decompressed(self, name):
        """The artifact's plain bytes, decompressed by the method its name shows; the checksum is
        still checked on the stored bytes."""
        return compression.decompressing(self.open(name), compression.method_of(name))

    def verify(self, names=None, decrypt=False):
        """Stream each artifact through its hash. Returns {name: None | error text}. The stored bytes
        need no key; ``decrypt`` also decrypts encrypted artifacts and checks the plaintext hash,
        which proves the configured identity works (restore plans do this)."""
        results = {}
        for name in names if names is not None else sorted(self.manifest.get("artifacts", {})):
            try:
                with (self.open(name) if decrypt else self.open_stored(name)) as stream:
                    while stream.read(CHUNK_SIZE):
                        pass
                results[name] = None
            except (BackupError, OSError) as exc:
                results[name] = str(exc)
        return results


def stored_files(manifest):
    """Every file of a stored set under its stored name: the artifacts (``<name>.age`` when
    encrypted), SHA256SUMS and metadata.json. Downloads and copies use these, so ``sha256sum -c``
    works on what they deliver."""
    artifacts = sorted(meta.get("file", name) for name, meta in manifest.get("artifacts", {}).items())
    signature = [signing.SIGNATURE_NAME] if manifest.get("signature") else []
    return [*artifacts, SUMS_NAME, *signature, MANIFEST_NAME]
