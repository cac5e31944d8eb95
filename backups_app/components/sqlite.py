"""SQLite files: the online backup API gives a consistent copy while the app keeps running;
``PRAGMA integrity_check`` vets it before it is stored and before it is restored.

Restore writes each file into a temporary file beside its target (``.<name>.restoring-*``, same
folder so the rename is atomic), checks it, then renames it over the target (the file and the folder
synced) and removes the old file's WAL/SHM/journal, after folding them into the old file first so a
kill at any point leaves the old or the new database whole. A failure or a kill before the rename
leaves the live file untouched (a killed restore's temporary files are removed by the next one).
Several files are switched one after the other: the safety backup covers a failure in between.
Stop the app's writers first (pre_restore hooks): a connection kept open across the rename still
sees the old file.

``sqlite.directory=PATH`` restores each file as ``PATH/<its name>`` instead (side by side: the
live files are not touched), the same way; a file already there is refused."""

import glob
import os
import shutil
import sqlite3
import stat
import tempfile
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

from backups_app.archive.spool import spool_file
from backups_app.archive.sqlitefile import (
    SIDECARS,
    check_integrity,
    connect_readonly,
    online_copy,
    remove_sidecars,
    replace_database,
    settle,
)
from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components._side import FolderPromotion, refuse_live, side_folder
from backups_app.components.base import Component
from backups_app.errors import ComponentError, Unchanged
from backups_app.parsing import comma_list


def _paths(value):
    paths = comma_list(value)
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two files share a name ({', '.join(stems)}); artifacts are named after it")
    return paths


def _table_counts(conn):
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: conn.execute(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchone()[0] for t in tables}


class SQLiteComponent(FolderPromotion, Component):
    options = {"paths": (_paths, Component.REQUIRED)}
    environment = {"paths": "SQLITE_PATHS"}
    configured_by = ("SQLITE_PATHS",)
    backup_order = 30
    restore_options = {"directory": (str, "")}
    target_options = {"directory": "restore the files into this folder (absolute path; files of those names "
                                   "must not exist there)"}

    def _artifact(self, path):
        return f"{self.name}_{Path(path).stem}.db"

    def _by_artifact(self):
        return {self._artifact(p): p for p in self.config["paths"]}

    def backup(self, writer, log):
        counts, absent = {}, []
        for artifact, path in self._by_artifact().items():
            if not os.path.exists(path):
                self.missing(writer, log, f"database file {path}", "SQLITE_PATHS")
                absent.append(artifact)
                continue
            if not os.path.isfile(path):
                raise ComponentError(f"{self.name}: {path} is not a database file (check SQLITE_PATHS).")
            with spool_file(".db") as copy:
                online_copy(path, copy)
                check_integrity(copy)
                with closing(connect_readonly(copy)) as conn:
                    counts[Path(path).stem] = _table_counts(conn)
                with open(copy, "rb") as f:
                    writer.write_from(artifact, f)
            log(f"{self.name}: copied {path} ({sum(counts[Path(path).stem].values())} rows)")
        return {"counts": counts, "server_version": sqlite3.sqlite_version, "absent": absent}

    def estimate(self):
        return {"bytes_total": sum(os.path.getsize(p) for p in self.config["paths"] if os.path.isfile(p))}

    def inspect(self):
        counts = {}
        for path in self.config["paths"]:
            if os.path.isfile(path):
                with closing(connect_readonly(path)) as conn:
                    counts[Path(path).stem] = _table_counts(conn)
            else:
                counts[Path(path).stem] = {}
        return counts

    @staticmethod
    def _stage(reader, artifact, copy):
        """Copy the artifact into file ``copy`` and check it (a read-only open of a WAL database
        leaves an empty WAL and index beside it: removed)."""
        with reader.open(artifact) as stream, open(copy, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK_SIZE)
        check_integrity(copy)
        remove_sidecars(copy)

    def rehearse(self, reader, artifacts, log):
        """Each file restored into a temporary file in the spool, checked, counted and removed."""
        counts = {}
        for artifact in artifacts:
            with spool_file(".db") as copy:
                self._stage(reader, artifact, copy)
                with closing(connect_readonly(copy)) as conn:
                    counts[artifact.removeprefix(f"{self.name}_").removesuffix(".db")] = _table_counts(conn)
            log(f"{self.name}: rehearsal restored {artifact} into a temporary file")
        return counts

    # Side by side

    def live_places(self):
        return self.config["paths"]

    def check_restore_options(self, options):
        folder = side_folder(self, "directory", options["directory"])
        for target in self._side_targets(folder).values():
            refuse_live(self, f"{self.name}.directory={options['directory']}", target)

    def _side_targets(self, folder):
        """{artifact: file} for a restore into ``folder``: each file under its own name."""
        return {a: os.path.join(folder, os.path.basename(p)) for a, p in self._by_artifact().items()} if folder else {}

    def targets_live(self, options):
        return not options["directory"]

    def probe_target(self, options, facts):
        files = self._side_targets(side_folder(self, "directory", options["directory"]))
        return {"paths": list(files.values())} if files else None

    def describe_target(self, options):
        if not options["directory"]:
            return None
        files = self._side_targets(side_folder(self, "directory", options["directory"]))
        return f"the files as {', '.join(files.values())}; the live files are not touched"

    def promote(self, options, facts, tag, log):
        files = self._side_targets(side_folder(self, "directory", options["directory"]))
        pairs = [(self._by_artifact()[a], f) for a, f in files.items() if os.path.lexists(f)]
        if not pairs:
            raise Unchanged(f"{self.name}: none of {', '.join(files.values())} exists; there is nothing to swap in.")
        for live, _restored in pairs:  # the live file alone holds its data: its WAL must not follow the new one
            if os.path.exists(live):
                settle(live)
                remove_sidecars(live)
        return self.promote_swaps(pairs, tag, log)

    def _existing(self, artifacts, options):
        files = self._side_targets(side_folder(self, "directory", options["directory"]))
        return [files[a] for a in artifacts if a in files and os.path.lexists(files[a])]

    def preflight(self, reader, artifacts, options):
        there = self._existing(artifacts, options)
        return {"problems": [f"{', '.join(there)} already exist; restore into another folder (nothing there is "
                             "replaced)"] if there else []}

    def restore(self, reader, artifacts, options, log):
        if options["directory"]:
            there = self._existing(artifacts, options)
            if there:
                raise Unchanged(f"{self.name}: {', '.join(there)} already exist; nothing was changed.")
        targets = self._side_targets(side_folder(self, "directory", options["directory"])) or self._by_artifact()
        unknown = [a for a in artifacts if a not in targets]
        if unknown:
            raise Unchanged(f"{self.name}: no configured SQLite file for {', '.join(unknown)} "
                                 f"(configured: {', '.join(targets.values())}).")
        with ExitStack() as stack:
            staged = {}
            try:  # stage and check every file before touching any live database
                for artifact in artifacts:
                    staged[artifact] = stack.enter_context(_beside(targets[artifact]))
                    self._stage(reader, artifact, staged[artifact])
            except Exception as exc:
                raise Unchanged(f"{self.name}: {exc} (the live files were not touched)") from None
            for artifact in [] if options["directory"] else self.absent(reader):
                if artifact in targets and os.path.exists(targets[artifact]):
                    log(f"{self.name}: {targets[artifact]} did not exist in this backup; removing it")
                    os.unlink(targets[artifact])
                    remove_sidecars(targets[artifact])
            for artifact, copy in staged.items():
                replace_database(copy, targets[artifact])
                log(f"{self.name}: restored {targets[artifact]} from {artifact}")


@contextmanager
def _beside(live):
    """A temporary file beside ``live`` (same folder: the final rename is atomic) with the live file's
    mode, removed on the way out unless it was renamed into place. Stale ones a killed restore left
    are removed first."""
    folder, base = os.path.split(os.path.abspath(live))
    os.makedirs(folder, exist_ok=True)
    prefix = f".{base}.restoring-"
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*")):
        os.unlink(stale)
    fd, path = tempfile.mkstemp(dir=folder, prefix=prefix)
    os.fchmod(fd, stat.S_IMODE(os.stat(live).st_mode) if os.path.exists(live) else 0o644)
    os.close(fd)
    try:
        yield path
    finally:
        for leftover in (path, *(path + suffix for suffix in SIDECARS)):
            if os.path.exists(leftover):
                os.unlink(leftover)
