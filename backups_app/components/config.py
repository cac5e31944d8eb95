"""Config files and folders (``.env``, compose files, monitoring): ``<name>.tar.zst`` (or
``.tar.gz`` / ``.tar`` by BACKUP_COMPRESSION) with paths relative to ``base_dir`` (by default the
folder holding all of them), so ``tar -xf config.tar.zst -C <base_dir>`` puts them back.

Config holds secrets: the manifest marks the component ``sensitive`` and the backup log warns
while backups are not encrypted. Restore defaults to ``preview``: a unified diff per file in the
run log (values of secret-looking settings redacted), nothing written. ``apply`` replaces each
changed file atomically (temporary file + rename) and keeps the replaced one as ``<file>.bak``.
Both refuse any member (or manifest ``absent`` entry) that is not under the configured paths once
the links on disk, those restored so far included, are resolved.

``config.directory=PATH`` extracts the files into a new or empty folder PATH instead (side by
side: the live files are not touched), under their paths relative to ``base_dir``.
"""

import difflib
import os
import shutil
import tarfile
import tempfile

from django.conf import settings

from backups_app.archive.hashing import sha256_file, sha256_stream
from backups_app.archive.safetar import check_member, extract_beside, is_inside, safe_extract, swap_journal
from backups_app.archive.spool import scratch_folder
from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components._side import DirectoryTarget, not_empty, require_empty, side_folder
from backups_app.components.base import Component
from backups_app.errors import ComponentError, InvalidOption, UnsafeArchive
from backups_app.faults import fault_point
from backups_app.parsing import choice, comma_list, parse_bool
from backups_app.redaction import hide_private_keys, redact

DIFF_MAX_BYTES = 1024 * 1024  # larger files are compared by hash only
DIFF_MAX_LINES = 400


def _resolved(path):
    """``path`` with the links in its folders resolved (a link at the end stays a link)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _text_lines(data):
    try:
        return hide_private_keys(data.decode("utf-8")).splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def count_files(paths):
    """{"files", "bytes"} of the regular files at or under ``paths`` (symlinks are stored as links),
    leaving out the ``.bak`` files that restores keep in folders: a restore and its rollback add
    them, and counts must say whether the configuration itself is as before."""
    files = size = 0
    for path in paths:
        if os.path.isdir(path):
            for root, _dirs, names in os.walk(path):
                for name in names:
                    full = os.path.join(root, name)
                    if not name.endswith(".bak") and os.path.isfile(full) and not os.path.islink(full):
                        files, size = files + 1, size + os.path.getsize(full)
        elif os.path.isfile(path) and not os.path.islink(path):
            files, size = files + 1, size + os.path.getsize(path)
    return {"files": files, "bytes": size}


class ConfigComponent(DirectoryTarget, Component):
    options = {"paths": (comma_list, Component.REQUIRED), "base_dir": (str, "")}
    environment = {"paths": "CONFIG_PATHS", "base_dir": "CONFIG_BASE_DIR"}
    configured_by = ("CONFIG_PATHS",)
    backup_order = 60
    # prune: files inside the configured folders that the backup does not have are moved to .bak
    # (rollbacks use it so that files a failed restore created do not stay behind).
    restore_options = {"mode": (choice("preview", "apply"), "preview"), "prune": (parse_bool, False),
                       "directory": (str, "")}
    target_options = {"directory": "write the files into this new or empty folder (absolute path)"}

    def changes_data(self, options):
        return options["mode"] == "apply" or bool(options["directory"])

    # Side by side

    def live_places(self):
        return self.config["paths"]

    def check_restore_options(self, options):
        if options["directory"] and (options["mode"] == "apply" or options["prune"]):
            raise InvalidOption(f"{self.name}.directory writes the backup's files into that folder; "
                                f"{self.name}.mode=apply and {self.name}.prune are for the live files. Give one or "
                                "the other.")
        side_folder(self, "directory", options["directory"])

    def describe_directory(self, folder):
        return f"the files into folder {folder} (paths relative to {self.base_dir}); the live files are not touched"

    def probe_target(self, options, facts):
        """CONFIG_PATHS and CONFIG_BASE_DIR for BACKUP_PROBE_COMMAND: the files as written into the folder."""
        if not options["directory"]:
            return None
        folder = side_folder(self, "directory", options["directory"])
        return {"paths": [os.path.join(folder, rel) for rel in self._relative()], "base_dir": folder}

    def preflight(self, reader, artifacts, options):
        problem = options["directory"] and not_empty(side_folder(self, "directory", options["directory"]))
        return {"problems": [problem] if problem else []}

    def _restore_into(self, reader, name, options, log):
        target = side_folder(self, "directory", options["directory"])
        require_empty(self, target)
        with reader.open_decompressed(name) as stream:
            files, size = extract_beside(stream, target, log=log)
        log(f"{self.name}: wrote {files} files, {size} bytes from {name} into {target}")

    def rollback_options(self):
        return self.parse_restore_options({"mode": "apply", "prune": True})

    @property
    def base_dir(self):
        paths = [os.path.abspath(p) for p in self.config["paths"]]
        return os.path.abspath(self.config["base_dir"]) if self.config["base_dir"] else \
            os.path.commonpath([os.path.dirname(p) for p in paths])

    def _relative(self):
        """{relative path: absolute path} for the configured paths."""
        base, relative = self.base_dir, {}
        for path in self.config["paths"]:
            rel = os.path.relpath(os.path.abspath(path), base)
            if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
                raise ComponentError(f"{self.name}: {path} is not inside CONFIG_BASE_DIR {base}.")
            relative[rel] = os.path.join(base, rel)
        return relative

    def _counts(self):
        return count_files(self._relative().values())

    def inspect(self):
        return self._counts()

    def estimate(self):
        return {"bytes_total": self._counts()["bytes"]}

    def backup(self, writer, log):
        absent = []
        with writer.open_compressed(f"{self.name}.tar") as (name, out), \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel, path in self._relative().items():
                if not os.path.lexists(path):
                    self.missing(writer, log, path, "CONFIG_PATHS")
                    absent.append(rel)
                    continue
                tar.add(path, arcname=rel, filter=self._no_hard_links)
        counts = self._counts()
        log(f"{self.name}: archived {counts['files']} files, {counts['bytes']} bytes from {self.base_dir} into {name}")
        if not getattr(settings, "BACKUP_AGE_RECIPIENTS", None):
            log(f"WARNING: {self.name} holds secrets (.env, credentials) and this backup is not encrypted; "
                "keep the backup storage private or set BACKUP_AGE_RECIPIENTS.")
        return {"counts": counts, "base_dir": self.base_dir, "paths": sorted(self._relative()), "absent": absent,
                "sensitive": True}

    def _no_hard_links(self, info):
        """Hard-linked files are stored whole, so that every member reads from the stream alone."""
        if info.islnk():
            info.type, info.linkname = tarfile.REGTYPE, ""
            info.size = os.path.getsize(os.path.join(self.base_dir, info.name))
        return info

    # Restore

    def restore(self, reader, artifacts, options, log):
        (name,) = artifacts
        if options["directory"]:
            return self._restore_into(reader, name, options, log)
        apply = options["mode"] == "apply"
        base = self.base_dir
        root = os.path.realpath(base)
        allowed = [_resolved(os.path.join(root, rel)) for rel in self._relative()]
        summary, seen = {"unchanged": 0, "changed": 0, "new": 0}, set()
        with reader.open_decompressed(name) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                target = self._target(member, root, allowed)
                if member.isdir():
                    if apply:
                        os.makedirs(target, exist_ok=True)
                    continue
                seen.add(member.name)
                state = self._apply(tar, member, target, log) if apply else self._preview(tar, member, target, log)
                summary[state] += 1
        for rel in self.absent(reader):
            target = self._target(tarfile.TarInfo(rel), root, allowed)  # a manifest entry is checked like a member
            if os.path.lexists(target):
                self._only_live(rel, target, "move" if apply else "would move", log)
        extra = self._live_files_not_in(seen)
        for rel in extra:
            target = self._target(tarfile.TarInfo(rel), root, allowed)
            self._only_live(rel, target, ("move" if apply else "would move") if options["prune"] else "keep", log)
        verb = "wrote" if apply else "preview (nothing written):"
        log(f"{self.name}: {verb} {summary['changed']} changed, {summary['new']} new, "
            f"{summary['unchanged']} unchanged files under {base}; {len(extra)} files only live"
            + ("" if apply else "; restore with --set config.mode=apply to write them"))

    @staticmethod
    def _target(member, root, allowed):
        """Where ``member`` goes under ``root`` (the real base_dir). Refused when it resolves, through
        the links on disk (those restored so far included), outside the ``allowed`` paths."""
        check_member(member, root)
        target = _resolved(os.path.join(root, member.name))
        if not any(is_inside(path, target) for path in allowed):
            raise UnsafeArchive(f"Refusing archive member {member.name!r}: not under the configured paths "
                                "(CONFIG_PATHS).")
        return target

    def _only_live(self, rel, target, action, log):
        if action == "move":
            self._set_aside(target)
        outcome = {"move": f"moved it to {rel}.bak", "would move": f"apply would move it to {rel}.bak", "keep": "kept"}
        log(f"{self.name}: {rel} is not in the backup; {outcome[action]}")

    def _live_files_not_in(self, seen):
        """Files inside the configured folders that the backup does not have (our .bak files aside)."""
        extra = []
        for path in self._relative().values():
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            for folder, _dirs, files in os.walk(path):
                for file in files:
                    found = os.path.relpath(os.path.join(folder, file), self.base_dir).replace(os.sep, "/")
                    if found not in seen and not found.endswith(".bak"):
                        extra.append(found)
        return sorted(extra)

    def _preview(self, tar, member, target, log):
        rel = member.name
        if member.issym():
            live = os.readlink(target) if os.path.islink(target) else None
            if live == member.linkname:
                return "unchanged"
            log(f"{self.name}: {rel}: symlink to {member.linkname} (live: {live or 'absent'})")
            return "new" if live is None else "changed"
        exists = os.path.isfile(target) and not os.path.islink(target)
        if member.size > DIFF_MAX_BYTES or (exists and os.path.getsize(target) > DIFF_MAX_BYTES):
            with tar.extractfile(member) as data:
                digest = sha256_stream(data)
            if exists and digest == sha256_file(target):
                return "unchanged"
            log(f"{self.name}: {rel}: large file ({member.size} bytes) differs; not shown")
            return "changed" if exists else "new"
        backup = tar.extractfile(member).read()
        live = b""
        if exists:
            with open(target, "rb") as f:
                live = f.read()
        if exists and live == backup:
            return "unchanged"
        old, new = _text_lines(live), _text_lines(backup)
        if old is None or new is None:
            log(f"{self.name}: {rel}: binary file differs ({len(live)} → {len(backup)} bytes)")
        else:
            diff = list(difflib.unified_diff(old, new, f"live/{rel}" if exists else "/dev/null", f"backup/{rel}"))
            shown = [redact(line.rstrip("\n")) for line in diff[:DIFF_MAX_LINES]]
            more = f"\n… {len(diff) - DIFF_MAX_LINES} more diff lines" if len(diff) > DIFF_MAX_LINES else ""
            log(f"{self.name}: {rel}:\n" + "\n".join(shown) + more)
        return "changed" if exists else "new"

    def _apply(self, tar, member, target, log):
        with swap_journal(target):  # a kill leaves a .<file>.restore-* the sweep removes
            return self._replace(tar, member, target, log)

    def _replace(self, tar, member, target, log):
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        if member.issym():
            if os.path.islink(target) and os.readlink(target) == member.linkname:
                return "unchanged"
            tmp = os.path.join(folder, f".{os.path.basename(target)}.restore-{os.getpid()}")
            os.symlink(member.linkname, tmp)
        else:
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.restore-", dir=folder)
            try:
                with os.fdopen(fd, "wb") as out, tar.extractfile(member) as data:
                    shutil.copyfileobj(data, out, CHUNK_SIZE)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, member.mode & 0o777)
                if os.path.isfile(target) and not os.path.islink(target) and sha256_file(tmp) == sha256_file(target):
                    # Same bytes in another mode (a .env made world-readable): the backup's mode, no .bak needed.
                    same_mode = os.stat(target).st_mode & 0o777 == member.mode & 0o777
                    if not same_mode:
                        os.chmod(target, member.mode & 0o777)
                    os.unlink(tmp)
                    if same_mode:
                        return "unchanged"
                    log(f"{self.name}: set the mode of {member.name} back to {member.mode & 0o777:o}")
                    return "changed"
            except BaseException:
                os.unlink(tmp)
                raise
        fault_point("config.file_written")
        existed = os.path.lexists(target)
        if existed:
            self._keep_bak(target)
        os.replace(tmp, target)
        log(f"{self.name}: wrote {member.name}" + (f" (previous version kept as {member.name}.bak)" if existed else ""))
        return "changed" if existed else "new"

    def _keep_bak(self, target):
        if os.path.isfile(target) and not os.path.islink(target):
            shutil.copy2(target, target + ".bak")  # the live file stays in place until the atomic replace
        else:
            self._set_aside(target)

    @staticmethod
    def _set_aside(target):
        bak = target + ".bak"
        if os.path.isdir(bak) and not os.path.islink(bak):
            shutil.rmtree(bak)
        elif os.path.lexists(bak):
            os.unlink(bak)
        os.rename(target, bak)

    def rehearse(self, reader, artifacts, log):
        (name,) = artifacts
        with scratch_folder("config-rehearsal-") as folder, reader.open_decompressed(name) as stream:
            safe_extract(stream, folder, mode="r|")
            counts = count_files(os.path.join(folder, name) for name in os.listdir(folder))
        log(f"{self.name}: rehearsal extracted {counts['files']} files, {counts['bytes']} bytes into a temporary "
            "folder")
        return counts
