"""Uploaded files: the folder streamed as ``<name>.tar.zst`` (or ``.tar.gz`` / ``.tar`` by
BACKUP_COMPRESSION; paths relative to the folder).
Restore extracts into a sibling folder with member checks, then swaps it in, so the live folder
is replaced whole or not at all."""

import os
import shutil
import tarfile
import tempfile

from django.conf import settings

from backups_app.archive.safetar import folder_counts, safe_extract
from backups_app.components.base import Component
from backups_app.errors import ComponentError


class UploadsComponent(Component):
    options = {"path": (str, Component.REQUIRED)}

    def _counts(self):
        files, size = folder_counts(self.config["path"])
        return {"files": files, "bytes": size}

    def backup(self, writer, log):
        root = self.config["path"]
        if not os.path.exists(root) and writer.allow_missing:
            log(f"{self.name}: folder {root} does not exist; recorded as absent")
            return {"counts": {"files": 0, "bytes": 0}, "absent": True}
        if not os.path.isdir(root):
            raise ComponentError(f"{self.name}: folder {root} does not exist (check UPLOADS_DIR).")
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
        (name,) = artifacts
        spool = settings.BACKUP_SPOOL_DIR
        os.makedirs(spool, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=f"rehearsal-{self.name}-", dir=spool)
        try:
            with reader.open_decompressed(name) as stream:
                safe_extract(stream, scratch, mode="r|")
            files, size = folder_counts(scratch)
            log(f"{self.name}: rehearsal extracted {files} files, {size} bytes into {scratch}")
            return {"files": files, "bytes": size}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def restore(self, reader, artifacts, options, log):
        live = os.path.abspath(self.config["path"])
        if reader.facts_of(self.name).get("absent"):
            log(f"{self.name}: the folder did not exist in this backup; removing {live}")
            shutil.rmtree(live, ignore_errors=True)
            return
        (name,) = artifacts
        parent = os.path.dirname(live)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(live)}.restore-", dir=parent)
        try:
            with reader.open_decompressed(name) as stream:
                files, size = safe_extract(stream, staging, mode="r|")
            log(f"{self.name}: extracted {files} files, {size} bytes; swapping into {live}")
            self._swap(staging, live)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @staticmethod
    def _swap(staging, live):
        if not os.path.exists(live):
            os.rename(staging, live)
            return
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(live)}.old-", dir=os.path.dirname(live))
        os.rmdir(old)
        os.rename(live, old)
        try:
            os.rename(staging, live)
        except BaseException:
            os.rename(old, live)
            raise
        shutil.rmtree(old, ignore_errors=True)
