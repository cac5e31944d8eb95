"""SQLite files: the online backup API gives a consistent copy while the app keeps running;
``PRAGMA integrity_check`` vets it before it is stored and before it is restored. Restore copies
the checked file into the live database through the same API (one transaction)."""

import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from django.conf import settings

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components.base import Component
from backups_app.errors import ComponentError


def _paths(value):
    paths = value.split(",") if isinstance(value, str) else list(value)
    paths = [str(p).strip() for p in paths if str(p).strip()]
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two files share a name ({', '.join(stems)}); artifacts are named after it")
    return paths


def check_integrity(path):
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise ComponentError(f"SQLite integrity check failed for {path}: {result[:5]}")


def _table_counts(conn):
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: conn.execute(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchone()[0] for t in tables}


class SQLiteComponent(Component):
    options = {"paths": (_paths, Component.REQUIRED)}

    def _artifact(self, path):
        return f"{self.name}_{Path(path).stem}.db"

    def _spool(self):
        spool = Path(settings.BACKUP_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(dir=spool, suffix=".db", delete=False).name

    def _by_artifact(self):
        return {self._artifact(p): p for p in self.config["paths"]}

    def backup(self, writer, log):
        counts, absent = {}, []
        for artifact, path in self._by_artifact().items():
            if not os.path.exists(path) and writer.allow_missing:
                log(f"{self.name}: {path} does not exist; recorded as absent")
                absent.append(artifact)
                continue
            if not os.path.isfile(path):
                raise ComponentError(f"{self.name}: database file {path} does not exist (check SQLITE_PATHS).")
            copy = self._spool()
            try:
                with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src, \
                        closing(sqlite3.connect(copy)) as dst:
                    src.backup(dst)
                    counts[Path(path).stem] = _table_counts(dst)
                check_integrity(copy)
                with open(copy, "rb") as f:
                    writer.write_from(artifact, f)
            finally:
                os.unlink(copy)
            log(f"{self.name}: copied {path} ({sum(counts[Path(path).stem].values())} rows)")
        return {"counts": counts, "server_version": sqlite3.sqlite_version, "absent": absent}

    def inspect(self):
        counts = {}
        for path in self.config["paths"]:
            if os.path.isfile(path):
                with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                    counts[Path(path).stem] = _table_counts(conn)
            else:
                counts[Path(path).stem] = {}
        return counts

    def _stage(self, reader, artifact):
        """Copy the artifact into the spool and check it; returns the file's path."""
        copy = self._spool()
        try:
            with reader.open(artifact) as stream, open(copy, "wb") as out:
                shutil.copyfileobj(stream, out, CHUNK_SIZE)
            check_integrity(copy)
        except BaseException:
            os.unlink(copy)
            raise
        return copy

    def rehearse(self, reader, artifacts, log):
        """Each file restored into a temporary file in the spool, checked, counted and removed."""
        counts = {}
        for artifact in artifacts:
            copy = self._stage(reader, artifact)
            try:
                with closing(sqlite3.connect(copy)) as conn:
                    counts[artifact.removeprefix(f"{self.name}_").removesuffix(".db")] = _table_counts(conn)
            finally:
                os.unlink(copy)
            log(f"{self.name}: rehearsal restored {artifact} into a temporary file")
        return counts

    def restore(self, reader, artifacts, options, log):
        targets = self._by_artifact()
        unknown = [a for a in artifacts if a not in targets]
        if unknown:
            raise ComponentError(f"{self.name}: no configured SQLite file for {', '.join(unknown)} "
                                 f"(configured: {', '.join(targets.values())}).")
        staged = {}
        try:
            # Stage and check every file before touching any live database.
            for artifact in artifacts:
                staged[artifact] = self._stage(reader, artifact)
            for artifact in reader.facts_of(self.name).get("absent", []):
                if artifact in targets and os.path.exists(targets[artifact]):
                    log(f"{self.name}: {targets[artifact]} did not exist in this backup; removing it")
                    os.unlink(targets[artifact])
            for artifact, copy in staged.items():
                live = targets[artifact]
                os.makedirs(os.path.dirname(os.path.abspath(live)), exist_ok=True)
                with closing(sqlite3.connect(copy)) as src, closing(sqlite3.connect(live)) as dst:
                    src.backup(dst)
                log(f"{self.name}: restored {live} from {artifact}")
        finally:
            for copy in staged.values():
                os.unlink(copy)
