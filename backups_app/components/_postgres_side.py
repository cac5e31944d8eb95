"""PostgreSQL restores into another database, or of some tables only (mixed into
PostgresComponent; docs/side-by-side.md).

- ``postgres.database=NAME``: the backup goes into database NAME on the same server, loaded into a
  fresh database and renamed (or swapped, with ``postgres.replace=true`` or when NAME is empty) into
  place, exactly like the default restore does with the live database, which is not touched. NAME
  may not be the live database, another source's, the maintenance database or a template.
- ``postgres.tables=a,b``: only those tables (``schema.name``, or ``name`` in schema public) with
  their sequences, indexes, constraints, defaults, triggers, comments and grants
  (components/_postgres_tables.py), in one transaction: into a database that has them, replacing
  them (``pg_restore --clean``); into a new or empty one with the schemas, types and functions
  they need.
- promotion (``swap_databases``, services/promote.py): the side-by-side database renamed into the
  live one's name and the live one renamed away, in one transaction, refused while other sessions
  use either; undone the same way.
"""

import socket
import tempfile

import psycopg

from backups_app.archive.spool import spool_dir
from backups_app.components import _postgres_tables
from backups_app.components._postgres_probes import split_column
from backups_app.errors import ComponentError, InvalidOption, Unchanged

MAX_IDENTIFIER = 63
TEMPLATES = ("template0", "template1")
NO_DATABASE = "this backup holds no database (it did not exist when the backup ran)"


def _server(config):
    """(address, port) a source's server is reached at, so localhost and 127.0.0.1 compare equal."""
    try:
        host = socket.gethostbyname(config["host"])
    except (OSError, UnicodeError):
        host = config["host"]
    return host, int(config["port"])


def _table_of(column):
    """``schema.table`` of a probed ``[schema.]table.column``, or None."""
    try:
        return ".".join(split_column(column)[:2])
    except ValueError:
        return None


class SideBySide:
    target_options = {
        "database": "restore into this database on the same server (created; the live one is not touched)",
        "replace": "true: replace that database even if it holds data",
        "tables": "only these tables (comma-separated, schema.name), with their sequences, indexes and constraints",
    }

    @staticmethod
    def is_side_restore(options):
        return bool(options["database"] or options["tables"])

    # --- Options -----------------------------------------------------------------------------

    def check_restore_options(self, options):
        target = options["database"]
        if options["replace"] and not target:
            raise InvalidOption(f"{self.name}.replace=true applies to a restore into another database; give "
                                f"{self.name}.database=NAME too (the live database is always replaced whole).")
        if options["tables"] and options["mode"] == "swap":
            raise InvalidOption(f"{self.name}.tables restores tables in one transaction, not by swapping databases; "
                                f"leave out {self.name}.mode=swap.")
        if target and options["mode"] != "auto" and not options["tables"]:
            raise InvalidOption(f"{self.name}.mode chooses how the live database is replaced; a restore into "
                                f"{self.name}.database={target} always loads a fresh database. Leave out "
                                f"{self.name}.mode.")
        if target:
            self._refuse_live_database(target)

    def _refuse_live_database(self, target):
        from backups_app import components  # the registry imports the store modules

        option = f"{self.name}.database={target}"
        if len(target.encode()) > MAX_IDENTIFIER or "\x00" in target:
            raise InvalidOption(f"{option}: a database name is at most {MAX_IDENTIFIER} bytes.")
        if target == self.config["dbname"]:
            raise InvalidOption(f"{option} is the live database; restore without {self.name}.database to replace "
                                "it, or name another database.")
        if target in (self.config["maintenance_db"], "postgres", *TEMPLATES):
            raise InvalidOption(f"{option}: {target} is the server's maintenance database or a template; name a "
                                "database of its own (e.g. scratch_restore).")
        if target.startswith(self._side_prefix()):
            raise InvalidOption(f"{option}: names starting with {self._side_prefix()} are the restore's own temporary "
                                "databases; choose another name.")
        here = _server(self.config)
        for source in components.all_components().values():
            if source is not self and isinstance(source, SideBySide) and source.config["dbname"] == target \
                    and _server(source.config) == here:
                raise InvalidOption(f"{option} is the live database of source {source.name!r} on the same server; "
                                    "name a database of its own.")

    def targets_live(self, options):
        return not options["database"]

    def probe_target(self, options, facts):
        """The restored database, and with postgres.tables only the vector columns of those tables."""
        if not self.is_side_restore(options):
            return None
        target = {"dbname": options["database"] or None}
        if options["tables"]:
            tables = {t if "." in t else f"public.{t}" for t in options["tables"]}
            target["collections"] = {c: c for c in (facts.get("probes") or {}) if _table_of(c) in tables}
        return target

    def describe_target(self, options):
        dbname, target = self.config["dbname"], options["database"]
        where = f"{self.config['host']}:{self.config['port']}"
        tables = f"tables {', '.join(options['tables'])}" if options["tables"] else "the whole database"
        if target:
            replace = " (replaced if it exists: postgres.replace=true)" if options["replace"] else ""
            return f"{tables} into database {target} on {where}{replace}; the live database {dbname} is not touched"
        if options["tables"]:
            return f"only {tables} of the live database {dbname}, replaced in one transaction"
        return None

    # --- The target --------------------------------------------------------------------------

    @staticmethod
    def _exists(conn, dbname):
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone() is not None

    def _target_state(self, conn, target):
        """{"exists", "objects": user objects in it (tables, views, functions, ...), "sessions"}."""
        if not self._exists(conn, target):
            return {"exists": False, "objects": [], "sessions": []}
        return {"exists": True, "objects": self._live_objects(target), "sessions": self._sessions(conn, target)}

    def _refusal(self, options, target, found):
        """Why the restore may not write into ``target`` as it is now, or None."""
        if options["database"] and found["objects"] and not options["replace"]:
            return (f"database {target} exists and is not empty ({len(found['objects'])} objects); choose a new name, "
                    f"drop it (DROP DATABASE \"{target}\"), or replace it with {self.name}.replace=true")
        return None

    def _use_list(self, reader, name, options, in_place):
        """The ``_postgres_tables.select`` answer for the selected tables (ComponentError when the
        archive cannot be listed)."""
        archive = self._archive(reader, name, verbose=True)
        if archive["lines"] is None:
            raise ComponentError(f"{self.name}: cannot list {name}: {archive['error']}")
        return _postgres_tables.select(archive["lines"], options["tables"], in_place)

    # --- Plan --------------------------------------------------------------------------------

    def side_preflight(self, reader, artifacts, options):
        if self.absent(reader):
            return {"problems": [NO_DATABASE], "notes": []}
        name, roles_name = self._split(artifacts)
        archive = self._archive(reader, name)
        problem = self._format_problem(reader, name, archive)
        if problem:
            return {"problems": [problem], "notes": []}
        target = options["database"] or self.config["dbname"]
        problems, notes = [], []
        with self._admin(live_ok=True) as conn:
            state = self._state(conn)
            found = self._target_state(conn, target)
            roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
            leftovers = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
                [self._fit(target, "__")]).fetchall()]
        problems += [p for p in [self._tool_too_old("pg_restore", state["server_version_num"]),
                                 self._refusal(options, target, found)] if p]
        if not found["exists"] and not (state["superuser"] or state["createdb"]):
            problems.append(f"database {target} does not exist and role {state['user']} may not create it: "
                            f"ALTER ROLE {state['user']} CREATEDB, or create it first (empty)")
        to_create = self._roles_to_create(reader, roles_name, roles, options)
        if to_create and (state["superuser"] or state["createrole"]):
            notes.append(f"creates the role(s) the backup needs first: {', '.join(to_create)}")
            roles |= set(to_create)
        owners = sorted(self._toc(archive["lines"])["owners"] - roles)
        if owners and not options["no_owner"]:
            problems.append(f"objects in {name} belong to role(s) {', '.join(owners)}, which do not exist on this "
                            f"server: create them or restore with {self.name}.no_owner=true")
        in_place = bool(found["objects"])
        if options["tables"]:
            chosen = self._use_list(reader, name, options, in_place)
            if chosen["missing"]:
                problems.append(f"table(s) {', '.join(chosen['missing'])} are not in {name} (name them as "
                                "schema.table; public may be left out)")
            how = "replaced in place (pg_restore --clean)" if in_place else "created with what they need"
            notes.append(f"restores {len(chosen['lines'])} archive entries into {target}, in one transaction, {how}")
            notes += [f"left out: {why}" for why in chosen["left_out"]]
        elif found["exists"]:
            notes.append(f"database {target} exists; the backup is loaded into a fresh database that replaces it")
        else:
            notes.append(f"creates database {target} from the backup (like the live one: owner, encoding, locale)")
        if found["sessions"] and options["database"] and not options["tables"]:
            notes.append(f"{len(found['sessions'])} session(s) use {target} now "
                         f"({self._describe_sessions(found['sessions'])}): the restore refuses unless they are gone, "
                         f"or ends them with {self.name}.terminate_sessions=true")
        if leftovers:
            notes.append(f"database(s) left by an interrupted restore into {target} (or one still running): "
                         f"{', '.join(leftovers)}; drop them with DROP DATABASE once no restore runs")
        return {"problems": problems, "notes": notes, "target": {"database": target, "exists": found["exists"]}}

    # --- Restore -----------------------------------------------------------------------------

    def side_restore(self, reader, artifacts, options, log):
        if self.absent(reader):
            raise Unchanged(f"{self.name}: {NO_DATABASE}; nothing was changed.")
        (name, roles_name), target = self._split(artifacts), options["database"] or self.config["dbname"]
        try:
            conn = self._admin(live_ok=True)
        except ComponentError as exc:
            raise Unchanged(f"{self.name}: cannot start the restore: {exc}") from None
        with conn:
            state = self._state(conn)
            problem = self._tool_too_old("pg_restore", state["server_version_num"])
            found = self._target_state(conn, target)
            problem = problem or self._refusal(options, target, found)
            if problem:
                raise Unchanged(f"{self.name}: {problem}; nothing was changed.")
            self._create_roles(conn, reader, roles_name, options, state, log)
            if options["tables"]:
                self._restore_tables(conn, reader, name, options, state, target, found, log)
            else:
                log(f"{self.name}: restoring into database {target}; the live database {self.config['dbname']} is "
                    "not touched")
                self._restore_swap(conn, reader, name, options, state, log, dbname=target)

    def _restore_tables(self, conn, reader, name, options, state, target, found, log):
        in_place = bool(found["objects"])
        try:
            chosen = self._use_list(reader, name, options, in_place)
        except ComponentError as exc:
            raise Unchanged(str(exc)) from None
        if chosen["missing"]:
            raise Unchanged(f"{self.name}: table(s) {', '.join(chosen['missing'])} are not in {name}; nothing was "
                            "changed.")
        for why in chosen["left_out"]:
            log(f"{self.name}: left out {why}")
        flags = ["--single-transaction", "--exit-on-error", *(["--clean", "--if-exists"] if in_place else []),
                 *(["--no-owner"] if options["no_owner"] else [])]
        created = not found["exists"]
        if created:
            self._create_fresh(conn, target, state)
        with tempfile.NamedTemporaryFile("w", dir=spool_dir(), suffix=".list") as use:
            use.write("\n".join(chosen["lines"]) + "\n")
            use.flush()
            log(f"{self.name}: pg_restore {' '.join(flags)} of table(s) {', '.join(options['tables'])} "
                f"({len(chosen['lines'])} entries) into {target}")
            try:
                self._pg_restore(reader, name, target, [*flags, "--use-list", use.name])
            except ComponentError as exc:
                if created:
                    self._drop(target, log)
                raise Unchanged(f"{self.name}: restoring table(s) {', '.join(options['tables'])} into {target} failed "
                                f"in one transaction, so {target} is as it was"
                                f"{' (and was dropped again)' if created else ''}: {self._hint(str(exc))}") from None
        log(f"{self.name}: restored table(s) {', '.join(options['tables'])} into {target}")

    # --- Promotion ---------------------------------------------------------------------------

    def swap_databases(self, current, replacement, old, log):
        """Rename ``current`` to ``old`` and ``replacement`` to ``current`` in one transaction,
        refused (Unchanged, naming them) while other sessions use either database."""
        with self._admin() as conn:
            for dbname in (current, replacement):
                if not self._exists(conn, dbname):
                    raise Unchanged(f"{self.name}: database {dbname} does not exist; nothing was renamed.")
                sessions = self._sessions(conn, dbname)
                if sessions:
                    raise Unchanged(f"{self.name}: {len(sessions)} other session(s) use database {dbname} "
                                    f"({self._describe_sessions(sessions)}); stop them first. Nothing was renamed.")
            oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", [replacement]).fetchone()[0]
            try:
                self._swap(conn, replacement, old, oid, {"terminate_sessions": False}, None, log, current)
            except psycopg.Error as exc:
                raise Unchanged(f"{self.name}: renaming {replacement} to {current} failed ({str(exc).strip()}); "
                                "nothing was renamed.") from None
        log(f"{self.name}: database {replacement} is now {current}; the previous {current} is {old}")

    def promote(self, options, facts, tag, log):
        if options["tables"]:
            raise Unchanged(f"{self.name}: this restore holds only table(s) {', '.join(options['tables'])}; promoting "
                            "its database would replace the live one with them. Copy the rows over instead "
                            "(docs/side-by-side.md).")
        live, restored = self.config["dbname"], options["database"]
        old = self._fit(live, f"_replaced_{tag.removeprefix('restore_')}")
        self.swap_databases(live, restored, old, log)
        return {"database": live, "old": old, "from": restored}

    def undo_promotion(self, record, log):
        self.swap_databases(record["database"], record["old"], record["from"], log)

    def drop_replaced(self, record, log):
        self._drop(record["old"], log, what="the database the promotion replaced")
