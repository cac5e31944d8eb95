"""Uploaded files: the folder streamed as ``<name>.tar.zst`` (or ``.tar.gz`` / ``.tar`` by
BACKUP_COMPRESSION; paths relative to the folder).
Restore extracts into a sibling folder with member checks, then swaps it in, so the live folder
is replaced whole or not at all."""

import os
import tarfile

from backups_app.archive.safetar import extracted, folder_counts, restore_folder
from backups_app.components.base import WHOLE_STORE, Component


class UploadsComponent(Component):
    options = {"path": (str, Component.REQUIRED)}
    environment = {"path": "UPLOADS_DIR"}
    configured_by = ("UPLOADS_DIR",)
    backup_order = 20
    holds_uploads = True

    def _counts(self):
        files, size = folder_counts(self.config["path"])
        return {"files": files, "bytes": size}

    def backup(self, writer, log):
        root = self.config["path"]
        if not os.path.isdir(root):
            self.missing(writer, log, f"folder {root}", "UPLOADS_DIR")
            return {"counts": {"files": 0, "bytes": 0}, "absent": [WHOLE_STORE]}
        with writer.open_compressed(f"{self.name}.tar") as (_name, out):
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in sorted(os.listdir(root)):
                    tar.add(os.path.join(root, entry), arcname=entry)
        counts = self._counts()
        log(f"{self.name}: archived {counts['files']} files, {counts['bytes']} bytes from {root}")
        return {"counts": counts}

    def inspect(self):
        return self._counts() if os.path.isdir(self.config["path"]) else {"files": 0, "bytes": 0}

    def rehearse(self, reader, artifacts, log):
        """Extract into a temporary folder in the spool, count, remove it."""
        if not artifacts:  # the folder was absent (a safety backup)
            return {"files": 0, "bytes": 0}
        (name,) = artifacts
        with reader.open_decompressed(name) as stream, extracted(stream, f"rehearsal-{self.name}-") as scratch:
            files, size = folder_counts(scratch)
        log(f"{self.name}: rehearsal extracted {files} files, {size} bytes")
        return {"files": files, "bytes": size}

    def restore(self, reader, artifacts, options, log):
        restore_folder(reader, self.name, artifacts, os.path.abspath(self.config["path"]), log,
                       absent=bool(self.absent(reader)))
