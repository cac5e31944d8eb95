"""SQLite files: the online backup API gives a consistent copy while the app keeps running;
``PRAGMA integrity_check`` vets it before it is stored and before it is restored. Restore copies
the checked file into the live database through the same API (one transaction)."""

import os
import shutil
import sqlite3
from contextlib import ExitStack, closing
from pathlib import Path

from backups_app.archive.spool import spool_file
from backups_app.archive.sqlitefile import check_integrity, connect_readonly, online_copy
from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components.base import Component
from backups_app.errors import ComponentError
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


class SQLiteComponent(Component):
    options = {"paths": (_paths, Component.REQUIRED)}
    environment = {"paths": "SQLITE_PATHS"}
    configured_by = ("SQLITE_PATHS",)
    backup_order = 30

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
        """Copy the artifact into file ``copy`` and check it."""
        with reader.open(artifact) as stream, open(copy, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK_SIZE)
        check_integrity(copy)

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

    def restore(self, reader, artifacts, options, log):
        targets = self._by_artifact()
        unknown = [a for a in artifacts if a not in targets]
        if unknown:
            raise ComponentError(f"{self.name}: no configured SQLite file for {', '.join(unknown)} "
                                 f"(configured: {', '.join(targets.values())}).")
        with ExitStack() as stack:
            staged = {artifact: stack.enter_context(spool_file(".db")) for artifact in artifacts}
            # Stage and check every file before touching any live database.
            for artifact, copy in staged.items():
                self._stage(reader, artifact, copy)
            for artifact in self.absent(reader):
                if artifact in targets and os.path.exists(targets[artifact]):
                    log(f"{self.name}: {targets[artifact]} did not exist in this backup; removing it")
                    os.unlink(targets[artifact])
            for artifact, copy in staged.items():
                live = targets[artifact]
                os.makedirs(os.path.dirname(os.path.abspath(live)), exist_ok=True)
                online_copy(copy, live)
                log(f"{self.name}: restored {live} from {artifact}")
