"""Uploaded files: the folder streamed as ``<name>.tar.zst`` (or ``.tar.gz`` / ``.tar`` by
BACKUP_COMPRESSION; paths relative to the folder).
Restore extracts into a sibling folder with member checks, then swaps it in, so the live folder
is replaced whole or not at all.

Side by side (docs/side-by-side.md): ``uploads.directory=PATH`` extracts into a new or empty folder
PATH instead (the live folder is not touched); ``uploads.paths=a/b,c`` restores only those files or
folders, each swapped in by rename (into the live folder) or extracted alone (into PATH)."""

import os
import shutil
import tarfile
import tempfile

from backups_app.archive.safetar import (
    extracted,
    folder_counts,
    is_inside,
    restore_folder,
    safe_extract,
    swap_in,
    swap_journal,
)
from backups_app.components._side import (
    FolderPromotion,
    not_empty,
    relative_paths,
    require_empty,
    selected,
    side_folder,
)
from backups_app.components.base import WHOLE_STORE, Component
from backups_app.errors import Unchanged


class UploadsComponent(FolderPromotion, Component):
    options = {"path": (str, Component.REQUIRED)}
    environment = {"path": "UPLOADS_DIR"}
    configured_by = ("UPLOADS_DIR",)
    backup_order = 20
    holds_uploads = True
    restore_options = {"directory": (str, ""), "paths": (relative_paths, [])}
    target_options = {"directory": "restore the folder into this new or empty folder (absolute path)",
                      "paths": "only these files or folders (comma-separated, relative to the folder)"}

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

    def estimate(self):
        return {"bytes_total": self.inspect()["bytes"]}

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
        if options["directory"]:
            self._restore_into(reader, artifacts, options, log)
        elif options["paths"]:
            self._restore_paths(reader, artifacts, options["paths"], log)
        else:
            restore_folder(reader, self.name, artifacts, os.path.abspath(self.config["path"]), log,
                           absent=bool(self.absent(reader)))

    # Side by side and by path

    def live_places(self):
        return [self.config["path"]]

    def check_restore_options(self, options):
        side_folder(self, "directory", options["directory"])

    def targets_live(self, options):
        return not options["directory"]

    def probe_target(self, options, facts):
        return {"path": side_folder(self, "directory", options["directory"])} if options["directory"] else None

    def describe_target(self, options):
        what = f"paths {', '.join(options['paths'])}" if options["paths"] else "the whole folder"
        if options["directory"]:
            return (f"{what} into folder {side_folder(self, 'directory', options['directory'])}; the live folder "
                    f"{self.config['path']} is not touched")
        if options["paths"]:
            return f"only {what} of the live folder {self.config['path']}, each replaced whole"
        return None

    def preflight(self, reader, artifacts, options):
        problems = []
        if (options["directory"] or options["paths"]) and not artifacts:
            problems.append("this backup holds no uploads folder (it did not exist when the backup ran)")
        elif options["paths"]:
            problems += self._missing_paths(reader, artifacts, options["paths"])
        if options["directory"]:
            problems += [p for p in [not_empty(side_folder(self, "directory", options["directory"]))] if p]
        return {"problems": problems}

    def promote(self, options, facts, tag, log):
        if options["paths"]:
            raise Unchanged(f"{self.name}: this restore holds only {', '.join(options['paths'])}; promoting it would "
                            "replace the whole live folder with them. Copy them over instead.")
        return self.promote_swaps([(self.config["path"], side_folder(self, "directory", options["directory"]))],
                                  tag, log)

    def _missing_paths(self, reader, artifacts, paths):
        (name,) = artifacts
        wanted = selected(paths)
        found = set()
        with reader.open_decompressed(name) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if wanted(member.name):
                    found.update(p for p in paths if member.name == p or member.name.startswith(p + "/"))
        return [f"uploads.paths: {p} is not in {name}" for p in paths if p not in found]

    def _restore_into(self, reader, artifacts, options, log):
        target = side_folder(self, "directory", options["directory"])
        if not artifacts:
            raise Unchanged(f"{self.name}: this backup holds no uploads folder; nothing was restored.")
        require_empty(self, target)
        restore_folder(reader, self.name, artifacts, target, log, select=selected(options["paths"]))

    def _restore_paths(self, reader, artifacts, paths, log):
        """Extract the selected paths beside the live folder, then swap each in by rename."""
        if not artifacts:
            raise Unchanged(f"{self.name}: this backup holds no uploads folder; nothing was restored.")
        (name,) = artifacts
        live = os.path.abspath(self.config["path"])
        root = os.path.realpath(live)
        with swap_journal(live):  # a kill leaves .<folder>.restore-* that the sweep removes
            staging = tempfile.mkdtemp(prefix=f".{os.path.basename(live)}.restore-", dir=os.path.dirname(live))
            try:
                with reader.open_decompressed(name) as stream:
                    safe_extract(stream, staging, select=selected(paths))
                for path in paths:
                    if not os.path.lexists(os.path.join(staging, path)):
                        raise Unchanged(f"{self.name}: {path} is not in {name}; nothing was changed.")
                    if not is_inside(root, os.path.realpath(os.path.dirname(os.path.join(live, path)))):
                        raise Unchanged(f"{self.name}: {path} lies behind a link that leaves {live}; nothing was "
                                        "changed.")
                for path in paths:
                    target = os.path.join(live, path)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with swap_journal(target):
                        swap_in(os.path.join(staging, path), target)
                    log(f"{self.name}: restored {path} into {live}")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
