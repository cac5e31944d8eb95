"""Reads a stored backup set, checking every byte against the manifest's SHA-256: the stored
bytes first, then, for an encrypted artifact, the decrypted bytes against the plaintext hash."""

import json
import re

from backups_app.archive import compression, crypto, signing
from backups_app.archive.hashing import HashingReader
from backups_app.archive.ids import validate_artifact_name
from backups_app.archive.metering import NO_METER, Metered
from backups_app.archive.storage import CHUNK_SIZE, open_stream, set_path
from backups_app.archive.writer import MANIFEST_NAME, SUMS_NAME
from backups_app.errors import BackupError, ChecksumMismatch, InvalidSet, NotFound
from backups_app.faults import reading


class MalformedManifest(InvalidSet):
    """A stored metadata.json this app did not write (or someone edited): refused, never trusted."""


SHA256_HEX = re.compile(r"[0-9a-f]{64}")
JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def malformed(backup_id, problem):
    return MalformedManifest(f"Backup {backup_id}: its {MANIFEST_NAME} is malformed ({problem}); it is refused. "
                             "Restore another backup, or the set's offsite copy.")


def validate_manifest(backup_id, manifest):
    """Raise MalformedManifest unless ``manifest`` has the shape the writer gives it: components and
    artifacts objects, every artifact of a known component with a plain file name, a 64-hex sha256
    and a size, every component's counts an object and its artifacts listed. Returns it."""
    def refuse(problem):
        raise malformed(backup_id, problem)

    if not isinstance(manifest, dict):
        refuse(f"a JSON {JSON_TYPES.get(type(manifest), 'value')}, not an object")
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
        if not isinstance(meta.get("component"), str) or meta["component"] not in components:
            refuse(f"artifact {name!r} belongs to no component of the set")
    for name, facts in components.items():
        if not isinstance(facts.get("counts", {}), dict):
            refuse(f"component {name!r} has counts that are not an object")
        listed = facts.get("artifacts", [])
        if not isinstance(listed, list) or not all(isinstance(a, str) and a in artifacts for a in listed):
            refuse(f"component {name!r} lists artifacts the set does not have")
    return manifest


def load_manifest(storage, backup_id):
    path = set_path(backup_id, MANIFEST_NAME)
    try:
        with open_stream(storage, path) as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"Backup {backup_id} has no {MANIFEST_NAME} in storage: it is incomplete or was deleted.")
    except OSError as exc:
        raise BackupError(f"Could not read {path}: {exc}") from exc
    except ValueError as exc:  # not JSON, not UTF-8
        raise malformed(backup_id, f"not JSON: {exc}") from None
    except RecursionError:
        raise malformed(backup_id, "nested too deeply") from None
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
        before = self._raw.size
        data = self._raw.read(size)
        reading(self.name, before, self._raw.size, self._expected["size"])
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
        # {name: meta} the catalog (the app database) recorded when the backup was taken; every
        # artifact must match it (services.backups.open_reader sets it). None: nothing to compare.
        self.catalog = None
        # Counts the bytes ``open`` gives, for the progress of the component being restored (archive/metering.py).
        self.meter = NO_METER

    def names(self):
        """Every artifact the stored metadata.json or the catalog lists."""
        return sorted({*self.manifest.get("artifacts", {}), *(self.catalog or {})})

    def _listed(self):
        return self.catalog if self.catalog is not None else self.manifest.get("artifacts", {})

    def artifacts_of(self, component):
        return sorted(n for n, meta in self._listed().items() if meta["component"] == component)

    def size_of(self, component):
        """The bytes ``open`` gives of ``component``'s artifacts, as listed (a progress total, not a check)."""
        return sum(meta.get("plaintext_size", meta["size"]) for meta in self._listed().values()
                   if meta["component"] == component)

    def facts_of(self, component):
        """What ``backup()`` returned for the component (counts, versions, ``absent`` markers)."""
        return self.manifest.get("components", {}).get(component, {})

    def meta(self, name):
        validate_artifact_name(name)
        meta = self.manifest.get("artifacts", {}).get(name)
        if self.catalog is not None and meta != self.catalog.get(name):
            self._refuse_changed(name, meta, self.catalog.get(name))
        if meta is None:
            raise NotFound(f"Backup {self.backup_id} has no artifact {name!r}.")
        return meta

    def check_catalog(self):
        """Raise InvalidSet unless the stored metadata.json lists every artifact as the catalog does."""
        for name in self.names():
            self.meta(name)

    def _refuse_changed(self, name, stored, recorded):
        taken = "the catalog recorded when the backup was taken"
        if recorded is None:
            problem = f"is listed in its stored {MANIFEST_NAME} but not in {taken}"
        elif stored is None:
            problem = f"is in {taken} but missing from its stored {MANIFEST_NAME}"
        else:
            fields = sorted(k for k in {*stored, *recorded} if stored.get(k) != recorded.get(k))
            problem = f"has a different {', '.join(fields)} in its stored {MANIFEST_NAME} than {taken}"
        raise InvalidSet(f"Artifact {name} of {self.backup_id} {problem}: the stored set was changed after it was "
                         "written. Restore from another copy or backup.")

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
        identity comes from BACKUP_AGE_IDENTITY_FILE), and checked both before and after. What
        the component reads counts in the progress (``meter``)."""
        meta = self.meta(name)
        if not meta.get("encryption"):
            return Metered(self.open_stored(name), self.meter)
        keys = crypto.identities()
        stored = self.open_stored(name)
        recipients_used = (self.manifest.get("encryption") or {}).get("recipients", [])
        plain = crypto.decrypting(stored, keys, name, recipients_used, lambda: stored.error)
        return Metered(VerifyingStream(plain, name, meta["plaintext_sha256"], meta["plaintext_size"]), self.meter)

    def open_decompressed(self, name):
        """The artifact's plain bytes, decompressed by the method its name shows; the checksum is
        still checked on the stored bytes."""
        return compression.decompressing(self.open(name), compression.method_of(name))

    def verify(self, names=None, decrypt=False):
        """Stream each artifact through its hash. Returns {name: None | error text}. The stored bytes
        need no key; ``decrypt`` also decrypts encrypted artifacts and checks the plaintext hash,
        which proves the configured identity works (restore plans do this)."""
        results = {}
        for name in names if names is not None else self.names():
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
