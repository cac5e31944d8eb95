"""Writes one backup set: artifacts streamed and hashed, then SHA256SUMS, then metadata.json last.

A set without metadata.json is incomplete by definition; the caller deletes it on failure.
With BACKUP_AGE_RECIPIENTS set, each artifact is stored encrypted as ``<name>.age``; components
never see it. SHA256SUMS covers the stored bytes (``sha256sum -c`` works without the key) and
the manifest records the plaintext hash and size too.
"""

import copy
import json
from contextlib import contextmanager

from backups_app import faults
from backups_app.archive import compression, crypto, signing
from backups_app.archive.hashing import HashingWriter
from backups_app.archive.ids import validate_artifact_name
from backups_app.archive.metering import NO_METER, Metered
from backups_app.archive.storage import CHUNK_SIZE, open_upload, save_chunks, set_path

MANIFEST_NAME = "metadata.json"
SUMS_NAME = "SHA256SUMS"
RESERVED_NAMES = {MANIFEST_NAME, SUMS_NAME, signing.SIGNATURE_NAME}


class BackupSetWriter:
    def __init__(self, storage, backup_id):
        self.storage = storage
        self.backup_id = backup_id
        # name -> {"component", "file", "size", "sha256", "compression", "encryption",
        #          "plaintext_size", "plaintext_sha256"}; size and sha256 are of the stored file.
        self.artifacts = {}
        self.current_component = None
        # Counts the bytes the current component writes, for the run's progress (archive/metering.py).
        self.meter = NO_METER
        # Safety backups record a missing file or folder as absent instead of failing, so a
        # rollback can put the "nothing was there" state back.
        self.allow_missing = False

    def for_component(self, name, meter):
        """This writer for component ``name``: the artifacts it opens are recorded as its own and the
        bytes it writes count on ``meter``. Each component of a parallel backup writes through its
        own (they share the set's artifacts)."""
        view = copy.copy(self)
        view.current_component, view.meter = name, meter
        return view

    @contextmanager
    def open(self, name, metered=True):
        """``with writer.open("postgres.dump") as f: f.write(...)``; ``metered``: the bytes written
        count in the progress (open_compressed counts them before compression instead)."""
        validate_artifact_name(name)
        if name in RESERVED_NAMES or name in self.artifacts:
            raise ValueError(f"Artifact name {name!r} is reserved or already used in this set.")
        keys = crypto.recipients()
        stored_name = name + crypto.SUFFIX if keys else name
        upload = open_upload(self.storage, set_path(self.backup_id, stored_name))
        stored = HashingWriter(upload)
        try:
            with crypto.encrypting(stored, keys, stored_name) as encrypted:
                plain = HashingWriter(encrypted) if keys else stored
                sink = faults.Written(plain, name) if faults.armed() else plain
                yield Metered(sink, self.meter) if metered else sink
        except BaseException:
            upload.abort()
            raise
        upload.close()
        self.artifacts[name] = {
            "component": self.current_component, "file": stored_name, "size": stored.size, "sha256": stored.hexdigest(),
            "compression": "none", "encryption": crypto.METHOD if keys else None,
            "plaintext_size": plain.size, "plaintext_sha256": plain.hexdigest(),
        }

    @contextmanager
    def open_compressed(self, stem):
        """``with writer.open_compressed("uploads.tar") as (name, f)``: an artifact compressed with
        BACKUP_COMPRESSION, named ``uploads.tar.zst`` / ``.gz`` / plain by the method."""
        chosen = compression.method()
        name = stem + compression.EXTENSIONS[chosen]
        with self.open(name, metered=False) as sink, compression.compressing(sink, chosen) as out:
            yield name, Metered(out, self.meter)
        self.artifacts[name]["compression"] = chosen

    def write_from(self, name, readable):
        """Copy a readable binary stream into artifact ``name``."""
        with self.open(name) as sink:
            while chunk := readable.read(CHUNK_SIZE):
                sink.write(chunk)

    def finish(self, manifest):
        """Store SHA256SUMS, the signature (with BACKUP_SIGNING_KEY) and then the manifest; the
        manifest marks the set complete."""
        sums = "".join(f"{meta['sha256']}  {meta['file']}\n" for meta in sorted(self.artifacts.values(),
                                                                                   key=lambda m: m["file"]))
        self._put(SUMS_NAME, sums.encode())
        signer = signing.keys()[:1]
        manifest = dict(manifest, artifacts=self.artifacts, encryption=crypto.manifest_entry(),
                        signature={"algorithm": signing.ALGORITHM, "key_id": signing.key_id(signer[0])} if signer
                        else None)
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        if signer:
            self._put(signing.SIGNATURE_NAME, signing.signature_for(data))
        self._put(MANIFEST_NAME, data)
        return manifest

    def _put(self, name, data):
        save_chunks(self.storage, set_path(self.backup_id, name), [data])
