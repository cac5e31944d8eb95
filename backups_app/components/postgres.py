"""PostgreSQL: ``pg_dump --format=custom`` streamed into ``<name>.dump``.

The dump and the row counts come from one exported snapshot, so the counts in the manifest are
exactly the rows in the dump. The password travels in PGPASSWORD, never in argv. The roles the
database needs, which pg_dump leaves out, go into ``<name>.roles.sql`` (components/_postgres_roles.py);
the restore and the rehearsal run it first, creating only the roles this server lacks.

Restore (``postgres.mode``):

- ``swap`` (what ``auto``, the default, chooses when the configured user may): the archive is
  loaded with ``pg_restore --exit-on-error`` into a fresh database ``<db>__restoring_<hex>``
  created from template0 with the live database's owner, encoding, locale and tablespace; its
  database-level properties (settings, per-role settings, grants, comment, connection limit) are
  copied from the live database; then, with no other session left on the live database, one
  transaction renames the live database away and the fresh one into its name, and the old one is
  dropped. The result is exactly the backup's schema and rows (objects a later migration added are
  gone), and until the swap the live database is untouched: any failure drops the fresh database
  and raises ``Unchanged``. Needs a superuser, or a user that owns the database and has CREATEDB.
- ``clean``: in place, ``pg_restore --clean --if-exists``, in one transaction unless the archive
  needs more locks than the server's lock table holds (then ``--transaction-size`` where
  pg_restore has it, else one transaction per object; the safety backup is the rollback). Objects
  that are not in the backup stay.

The rehearsal (deep verification) runs the swap's load, with the same flags, into a scratch
database and drops it: it fails where the restore's load would.
"""

import io
import os
import re
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager

import psycopg
from psycopg import sql

from backups_app import probes
from backups_app.components import _postgres_roles
from backups_app.components._postgres_probes import PostgresSearcher, vector_columns
from backups_app.components._postgres_side import SideBySide
from backups_app.components.base import WHOLE_STORE, Component
from backups_app.errors import ComponentError, Unchanged
from backups_app.parsing import choice, comma_list, parse_bool
from backups_app.procs import Program, feed, in_thread, run

#: The key of the large-object count in ``counts``. Tables are counted as ``name`` (schema public)
#: or ``schema.name``, and no user table lives in pg_catalog, so it cannot clash with a table.
LARGE_OBJECTS = "pg_catalog.pg_largeobject_metadata"

# Tables whose rows the dump holds: partitioned tables once (the parent's count covers its
# partitions), extension members left out (CREATE EXTENSION makes them, the dump has not their rows).
TABLES_SQL = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
    ORDER BY 1, 2
"""

# The objects of the live database the plan compares with the archive's table of contents, named
# the way `pg_restore --list` names them (run with search_path '' as pg_dump does, so type names in
# function signatures are qualified alike).
USER_NAMESPACE = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'"
NOT_EXTENSION_MEMBER = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
                        "AND d.objid = {alias}.oid AND d.deptype = 'e')")
LIVE_OBJECTS_SQL = f"""
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                          WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_NAMESPACE}
      AND {NOT_EXTENSION_MEMBER.format(catalog="pg_class", alias="c")}
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, n.nspname,
           p.proname || '(' || CASE WHEN p.prokind = 'a' AND p.pronargs = 0 THEN '*'
                                    ELSE pg_catalog.oidvectortypes(p.proargtypes) END || ')'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {USER_NAMESPACE} AND {NOT_EXTENSION_MEMBER.format(catalog="pg_proc", alias="p")}
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE (t.typtype IN ('e', 'r', 'd') OR (t.typtype = 'b' AND t.typcategory <> 'A')
           OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
      AND {USER_NAMESPACE} AND {NOT_EXTENSION_MEMBER.format(catalog="pg_type", alias="t")}
    UNION ALL
    SELECT 'SCHEMA', '-', n.nspname FROM pg_namespace n
    WHERE {USER_NAMESPACE} AND n.nspname <> 'public'
      AND {NOT_EXTENSION_MEMBER.format(catalog="pg_namespace", alias="n")}
    UNION ALL
    SELECT 'EXTENSION', '-', e.extname FROM pg_extension e WHERE e.extname <> 'plpgsql'
    ORDER BY 1, 2, 3
"""

# `pg_restore --list` lines: "<dump id>; <catalog oid> <object oid> <DESC> <schema|-> <name> <owner>".
TOC_LINE = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
TOC_KINDS = {  # catalog oid: the descriptions the plan compares (longest first)
    1259: ("MATERIALIZED VIEW", "FOREIGN TABLE", "SEQUENCE", "TABLE", "VIEW"),  # pg_class
    1255: ("PROCEDURE", "AGGREGATE", "FUNCTION"),  # pg_proc
    1247: ("DOMAIN", "TYPE"),  # pg_type
    2615: ("SCHEMA",),  # pg_namespace
    3079: ("EXTENSION",),  # pg_extension
}
#: How long a `pg_dump/pg_restore --version` answer is reused (a fork and exec each, ~25 ms): a
#: restore asks pg_restore's several times and a worker's backups follow each other; not for ever,
#: because Debian's pg_wrapper runs the newest client installed, so a new one may answer the same path.
VERSION_TTL_SECONDS = 60
_tool_versions = {}  # tool path -> (time.monotonic() when asked, (major, output))

#: pg_dump ≥ 17 writes up to this many large objects per "BLOB METADATA" entry.
BLOBS_PER_ENTRY = 1000
#: Locks one restored archive entry may take (the object, its indexes, TOAST table, row type...).
LOCKS_PER_ENTRY = 4

#: The highest custom-format archive version each pg_restore major reads ("PGDMP" + major, minor).
ARCHIVE_FORMATS = {11: (1, 13), 12: (1, 14), 13: (1, 14), 14: (1, 14), 15: (1, 14), 16: (1, 15), 17: (1, 16),
                   18: (1, 16)}
#: --transaction-size: pg_restore 17+; 1000 objects fit the default lock table (PostgreSQL's advice).
TRANSACTION_SIZE_SINCE = 17
TRANSACTION_SIZE = 1000
#: PostgreSQL identifiers are at most 63 bytes (longer ones are silently truncated).
MAX_IDENTIFIER = 63
#: Settings whose value is a list of quoted items (pg_dump's variable_is_guc_list_quote).
LIST_SETTINGS = {"local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
                 "temp_tablespaces", "unix_socket_directories"}

SWAP, CLEAN, AUTO = "swap", "clean", "auto"
#: How ``counts`` was read, recorded in the manifest beside it (``row_counts``).
ROW_COUNTS = "exact, count(*) in the dump's snapshot, no parallel workers or JIT"
SHOWN = 40  # objects / sessions named in a plan note before "and N more"


class PostgresComponent(SideBySide, Component):
    options = {
        "host": (str, "localhost"),
        "port": (int, 5432),
        "user": (str, "postgres"),
        "password": (str, ""),
        "dbname": (str, Component.REQUIRED),
        "bin_dir": (str, ""),
        # Where the restore connects to create, rename and drop databases (never the live one).
        "maintenance_db": (str, "postgres"),
        # Store the roles' password hashes too (reading them needs a superuser).
        "role_passwords": (parse_bool, False),
        # Vector columns the backup records probes of (table.column, ...; backups_app/probes.py).
        "vector_columns": (vector_columns, []),
    }
    secret_options = ("password",)
    restore_options = {
        "no_owner": (parse_bool, False),
        "mode": (choice(AUTO, SWAP, CLEAN), AUTO),
        "terminate_sessions": (parse_bool, False),
        # Side-by-side and partial restores (components/_postgres_side.py).
        "database": (str, ""),
        "replace": (parse_bool, False),
        "tables": (comma_list, []),
    }
    target_options = SideBySide.target_options
    environment = {"host": "POSTGRES_HOST", "port": "POSTGRES_PORT", "user": "POSTGRES_USER",
                   "password": "POSTGRES_PASSWORD", "dbname": "POSTGRES_DB", "bin_dir": "PG_BIN_DIR",
                   "maintenance_db": "POSTGRES_MAINTENANCE_DB", "role_passwords": "POSTGRES_BACKUP_ROLE_PASSWORDS",
                   "vector_columns": "POSTGRES_VECTOR_COLUMNS"}
    configured_by = ("POSTGRES_DB",)
    backup_order = 10

    @property
    def artifact_name(self):
        return f"{self.name}.dump"

    @property
    def roles_artifact(self):
        return f"{self.name}.roles.sql"

    def _tool(self, name):
        return os.path.join(self.config["bin_dir"], name) if self.config["bin_dir"] else name

    def required_programs(self):
        hint = "apt-get install postgresql-client (or set PG_BIN_DIR to the folder holding it)."
        return [(self._tool("pg_dump"), hint), (self._tool("pg_restore"), hint)]

    def _env(self):
        return {"PGPASSWORD": self.config["password"]} if self.config["password"] else {}

    def _conn_args(self):
        c = self.config
        return ["--host", c["host"], "--port", str(c["port"]), "--username", c["user"], "--no-password"]

    def connect(self, dbname=None, **kwargs):
        c = self.config
        try:
            return psycopg.connect(host=c["host"], port=c["port"], user=c["user"], password=c["password"] or None,
                                   dbname=dbname or c["dbname"], connect_timeout=10, **kwargs)
        except psycopg.OperationalError as exc:
            raise ComponentError(
                f"Cannot connect to PostgreSQL {c['user']}@{c['host']}:{c['port']}/{dbname or c['dbname']}: "
                f"{str(exc).strip()}"
            ) from None

    def _admin(self, live_ok=False):
        """An autocommit connection to a database other than the live one (the maintenance
        database, else template1): databases are created, renamed and dropped from there. With
        ``live_ok``, the live database itself when neither accepts us (enough to read the server's
        state and to create or drop other databases, not to rename the live one)."""
        names = [n for n in dict.fromkeys((self.config["maintenance_db"], "template1")) if n != self.config["dbname"]]
        names += [self.config["dbname"]] if live_ok else []
        error = None
        for name in names:
            try:
                return self.connect(dbname=name, autocommit=True)
            except ComponentError as exc:
                error = error or exc
        raise error

    # --- Counts -------------------------------------------------------------------------------

    @staticmethod
    def _counts(cursor):
        # Plain sequential counts: parallel workers and JIT only add start-up cost here.
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.execute("SET jit = off")
        cursor.execute(TABLES_SQL)
        counts = {}
        for schema, table in cursor.fetchall():
            cursor.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            counts[table if schema == "public" else f"{schema}.{table}"] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata")
        large_objects = cursor.fetchone()[0]
        if large_objects:
            counts[LARGE_OBJECTS] = large_objects
        return counts

    # --- Tools --------------------------------------------------------------------------------

    def _tool_version(self, tool):
        """(major, `tool --version` output), asked again after VERSION_TTL_SECONDS only."""
        path = self._tool(tool)
        asked_at, version = _tool_versions.get(path, (None, None))
        if asked_at is None or time.monotonic() - asked_at > VERSION_TTL_SECONDS:
            output = run([path, "--version"]).strip()
            match = re.search(r"(\d+)(?:\.(\d+))?", output)
            version = (int(match.group(1)) if match else 0), output
            _tool_versions[path] = (time.monotonic(), version)
        return version

    def _tool_too_old(self, tool, server_version_num, version=None):
        """The problem when ``tool`` (of ``version``, its _tool_version(), asked when not given) is
        older than the server (None when it is not)."""
        tool_major, _ = version or self._tool_version(tool)
        server_major = server_version_num // 10000
        if tool_major >= server_major:
            return None
        action = "dump" if tool == "pg_dump" else "restore into"
        return (f"{tool} {tool_major} is older than the PostgreSQL {server_major} server and cannot {action} it. "
                f"Install postgresql-client-{server_major} (apt-get install postgresql-client-{server_major}) "
                f"and set PG_BIN_DIR=/usr/lib/postgresql/{server_major}/bin.")

    def _check_tool_version(self, tool, server_version_num):
        """`tool --version` (run once), or ComponentError when the tool is older than the server."""
        version = self._tool_version(tool)
        problem = self._tool_too_old(tool, server_version_num, version)
        if problem:
            raise ComponentError(problem)
        return version[1]

    # --- Backup -------------------------------------------------------------------------------

    def _database_exists(self):
        with self._admin() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.config["dbname"]]).fetchone() \
                is not None

    def backup(self, writer, log):
        if writer.allow_missing and not self._database_exists():
            self.missing(writer, log, f"database {self.config['dbname']}", "POSTGRES_DB")
            return {"counts": {}, "absent": [WHOLE_STORE]}
        with self.connect() as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('server_version'), current_setting('server_version_num')::int")
                server_version, server_version_num = cur.fetchone()
                tool_version = self._check_tool_version("pg_dump", server_version_num)
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
                log(f"{self.name}: dumping (server {server_version}, snapshot {snapshot})")
                argv = [self._tool("pg_dump"), *self._conn_args(), "--format=custom", f"--snapshot={snapshot}",
                        "--dbname", self.config["dbname"]]
                # The exact row counts and the roles the objects need are read in the same snapshot
                # while pg_dump streams, so they cost no extra time; the connection must stay open
                # until pg_dump has started anyway.
                counts, roles = {}, []

                def read_in_snapshot():
                    counts.update(self._counts(cur))
                    roles.extend(self._read_roles(cur))

                read = in_thread(read_in_snapshot)
                try:
                    with Program(argv, env=self._env(), stdout=subprocess.PIPE) as dump:
                        writer.write_from(self.artifact_name, dump.proc.stdout)
                finally:
                    read()
                rows = sum(v for k, v in counts.items() if k != LARGE_OBJECTS)
                objects = f" and {counts[LARGE_OBJECTS]} large objects" if LARGE_OBJECTS in counts else ""
                log(f"{self.name}: dumped {rows} rows in {len(counts) - bool(objects)} tables{objects}")
                # In the dump's snapshot: the probes see exactly the rows the dump holds.
                found = probes.recording(self, PostgresSearcher(conn, self.config["vector_columns"], self.name),
                                         log) if self.config["vector_columns"] else {}
                self._store_roles(roles, conn, writer, log)
                cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
                owner = cur.fetchone()[0]
        return {**found, "counts": counts, "row_counts": ROW_COUNTS, "server_version": server_version,
                "tool_version": tool_version, "roles": [role["name"] for role in roles], "database_owner": owner}

    def _read_roles(self, cursor):
        """The roles the database needs (pg_dump leaves them out)."""
        try:
            return _postgres_roles.read_roles(cursor, with_passwords=self.config["role_passwords"])
        except psycopg.errors.InsufficientPrivilege:
            raise ComponentError(f"{self.name}: POSTGRES_BACKUP_ROLE_PASSWORDS needs a superuser to read the roles' "
                                 f"password hashes, and {self.config['user']} is not one; unset it (roles are then "
                                 "stored without passwords).") from None

    def _store_roles(self, roles, connection, writer, log):
        """Store ``roles`` as ``<name>.roles.sql``."""
        script = _postgres_roles.roles_script(roles, connection)
        writer.write_from(self.roles_artifact, io.BytesIO(script.encode()))
        passwords = "with" if self.config["role_passwords"] else "without"
        log(f"{self.name}: stored {len(roles)} role(s) the database needs, {passwords} passwords, in "
            f"{self.roles_artifact}")

    def estimate(self):
        """The database's size on disk: a custom-format dump is compressed, so it streams less."""
        with self.connect() as conn:
            return {"bytes_total": conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]}

    def inspect(self):
        try:
            conn = self.connect()
        except ComponentError:
            if not self._database_exists():
                return {}  # a new server: nothing there yet
            raise
        with conn, conn.cursor() as cur:
            try:
                return self._counts(cur)
            except psycopg.errors.InsufficientPrivilege as exc:
                user = self.config["user"]
                raise ComponentError(f"{self.name}: {str(exc).strip()}: role {user} cannot count the rows (GRANT "
                                     f"pg_read_all_data TO {user}, PostgreSQL 14+)") from None

    @contextmanager
    def searcher(self, target=None):
        """The probes' searches (backups_app/probes.py) in the live database or ``target``
        {"dbname": another database on this server}."""
        with self.connect(dbname=(target or {}).get("dbname")) as conn:
            yield PostgresSearcher(conn, self.config["vector_columns"], self.name)

    # --- The archive --------------------------------------------------------------------------

    def _archive(self, reader, name, verbose=False):
        """What the archive's head says, read through ``pg_restore --list`` (which reads only the
        header and the table of contents; with ``verbose`` each entry's dependencies too):
        {"format": (major, minor) or None, "lines": [...] or None, "error": why pg_restore cannot
        read it, or None}."""
        with tempfile.TemporaryFile() as listing, reader.open(name) as stream:
            head = b""
            while len(head) < 8 and (chunk := stream.read(8 - len(head))):
                head += chunk
            found = {"format": (head[5], head[6]) if head[:5] == b"PGDMP" and len(head) >= 7 else None,
                     "lines": None, "error": None}
            try:
                argv = [self._tool("pg_restore"), "--list", *(["--verbose"] if verbose else [])]
                with Program(argv, stdin=subprocess.PIPE, stdout=listing) as lister:
                    try:
                        lister.proc.stdin.write(head)
                    except BrokenPipeError:
                        pass
                    feed(stream, lister)
            except ComponentError as exc:
                found["error"] = str(exc)
                return found
            listing.seek(0)
            found["lines"] = listing.read().decode("utf-8", "replace").splitlines()
        return found

    def _format_problem(self, reader, name, archive):
        """Why the pg_restore here cannot read this archive (None when it can), with the fix."""
        restore_major, restore_version = self._tool_version("pg_restore")
        readable = ARCHIVE_FORMATS.get(restore_major)
        written = archive["format"]
        too_new = written is not None and (written > readable if readable else "unsupported version" in
                                           (archive["error"] or ""))
        if not too_new:
            return archive["error"] and f"{restore_version} cannot read {name}: {archive['error']}"
        dumped_by = reader.facts_of(self.name).get("tool_version") or ""
        match = re.search(r"(\d+)(?:\.\d+)?", dumped_by)
        dump_major = int(match.group(1)) if match else min(
            (major for major, fmt in ARCHIVE_FORMATS.items() if fmt >= written), default=restore_major + 1)
        reads = f" (it reads archive formats up to {readable[0]}.{readable[1]})" if readable else ""
        cause = f" ({archive['error']})" if archive["error"] else ""
        return (f"{name} was written by {dumped_by or f'pg_dump {dump_major}'} in archive format "
                f"{written[0]}.{written[1]}, newer than {restore_version} here reads{reads}{cause}. "
                f"Install postgresql-client-{dump_major} (apt-get install postgresql-client-{dump_major}) "
                f"and set PG_BIN_DIR=/usr/lib/postgresql/{dump_major}/bin, then plan the restore again.")

    @staticmethod
    def _toc(lines):
        """The archive's table of contents: {"keys": names as the plan compares them, "owners",
        "locks": locks a restore in one transaction would take}."""
        keys, owners, entries, blobs = set(), set(), 0, 0
        for line in lines:
            match = TOC_LINE.match(line)
            if not match:
                continue
            catalog, rest = int(match.group(2)), match.group(4)
            head, _, owner = rest.rpartition(" ")
            if owner:
                owners.add(owner)
            if rest.startswith("BLOB METADATA "):
                blobs += BLOBS_PER_ENTRY
            elif rest.startswith("BLOB "):
                blobs += 1
            else:
                entries += 1
            for kind in TOC_KINDS.get(catalog, ()):
                if rest.startswith(kind + " "):
                    keys.update((rest, head))
                    break
        return {"keys": keys, "owners": owners, "locks": blobs + LOCKS_PER_ENTRY * entries}

    def _live_objects(self, dbname=None):
        with self.connect(dbname) as conn:
            conn.execute("SET search_path = ''")
            return conn.execute(LIVE_OBJECTS_SQL).fetchall()

    def _not_in_backup(self, toc):
        """Objects of the live database that the archive does not hold: ["table public.audit", ...]."""
        return [f"{kind.lower()} {name}" if schema == "-" else f"{kind.lower()} {schema}.{name}"
                for kind, schema, name in self._live_objects() if f"{kind} {schema} {name}" not in toc["keys"]]

    # --- The server and the live database -----------------------------------------------------

    def _state(self, conn):
        """What the restore needs to know about the server, the configured user and the live database."""
        row = conn.execute("""
            SELECT current_user, r.rolsuper, r.rolcreatedb, r.rolcreaterole, pg_has_role('pg_signal_backend', 'MEMBER'),
                   current_setting('server_version_num')::int,
                   current_setting('max_locks_per_transaction')::int
                     * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)
            FROM pg_roles r WHERE r.rolname = current_user""").fetchone()
        state = dict(zip(("user", "superuser", "createdb", "createrole", "signal", "server_version_num", "lock_table"),
                         row))
        state["on_live"] = conn.info.dbname == self.config["dbname"]
        state["live"] = self._live_database(conn, state["server_version_num"])
        return state

    def _live_database(self, conn, version):
        dbname = self.config["dbname"]
        set_owner = "SET" if version >= 160000 else "MEMBER"  # what CREATE DATABASE ... OWNER asks
        row = conn.execute(f"""
            SELECT d.oid, to_jsonb(d), pg_get_userbyid(d.datdba), pg_has_role(d.datdba, 'USAGE'),
                   pg_has_role(d.datdba, '{set_owner}'), pg_encoding_to_char(d.encoding), t.spcname,
                   shobj_description(d.oid, 'pg_database'), d.datacl IS NOT NULL,
                   (SELECT count(*) FROM pg_replication_slots s WHERE s.database = d.datname),
                   (SELECT count(*) FROM pg_prepared_xacts x WHERE x.database = d.datname)
            FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s""",
                           [dbname]).fetchone()
        if row is None:
            return None
        live = dict(zip(("oid", "row", "owner", "is_owner", "can_set_owner", "encoding", "tablespace", "comment",
                         "has_acl", "slots", "prepared"), row))
        live["acl"] = conn.execute("""
            SELECT CASE a.grantee WHEN 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type,
                   a.is_grantable
            FROM pg_database d, aclexplode(d.datacl) WITH ORDINALITY a(grantor, grantee, privilege_type,
                                                                        is_grantable, n)
            WHERE d.oid = %s ORDER BY a.n""", [live["oid"]]).fetchall()
        live["settings"] = conn.execute("""
            SELECT CASE s.setrole WHEN 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
            FROM pg_db_role_setting s WHERE s.setdatabase = %s ORDER BY s.setrole""", [live["oid"]]).fetchall()
        return live

    @staticmethod
    def _sessions(conn, dbname):
        """Other sessions on ``dbname``: [(pid, user, application_name, client)]."""
        return conn.execute("""
            SELECT pid, usename, application_name, coalesce(host(client_addr), 'local socket')
            FROM pg_stat_activity
            WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker'
            ORDER BY pid""", [dbname]).fetchall()

    @staticmethod
    def _describe_sessions(sessions):
        groups = {}
        for _pid, user, application, client in sessions:
            key = f"{application or 'no application_name'} as {user or '?'} from {client}"
            groups[key] = groups.get(key, 0) + 1
        return ", ".join(f"{n} × {key}" if n > 1 else key for key, n in groups.items())

    def _swap_blockers(self, state):
        """Why the fresh-database swap cannot run here, each with its fix ([] when it can)."""
        user, dbname, live = state["user"], self.config["dbname"], state["live"]
        blockers = []
        if state["on_live"]:
            blockers.append(f"role {user} cannot connect to a database other than {dbname} to rename it (set "
                            f"POSTGRES_MAINTENANCE_DB, or GRANT CONNECT ON DATABASE postgres TO {user})")
        if not state["superuser"]:
            if not state["createdb"]:
                blockers.append(f"role {user} may not create databases (grant it: ALTER ROLE {user} CREATEDB)")
            if live and not live["is_owner"]:
                blockers.append(f"role {user} does not own database {dbname} (it belongs to {live['owner']}: "
                                f"ALTER DATABASE {dbname} OWNER TO {user})")
            if live and any(role not in (None, user) for role, _ in live["settings"]):
                blockers.append(f"database {dbname} has per-role settings of other roles (ALTER ROLE ... IN "
                                "DATABASE), which only a superuser can copy")
        if live and live["slots"]:
            blockers.append(f"{live['slots']} logical replication slot(s) use database {dbname} and would stay "
                            "with the replaced database")
        if live and live["prepared"]:
            blockers.append(f"{live['prepared']} prepared transaction(s) hold database {dbname} "
                            "(COMMIT PREPARED or ROLLBACK PREPARED them)")
        return blockers

    def _mode(self, state, options):
        """(mode, why, blockers)."""
        blockers = self._swap_blockers(state)
        if options["mode"] == CLEAN:
            return CLEAN, "postgres.mode=clean: in place with pg_restore --clean --if-exists", blockers
        if state["live"] is None:
            return SWAP, f"database {self.config['dbname']} does not exist: it is created from the backup", blockers
        if options["mode"] == SWAP:
            return SWAP, "postgres.mode=swap", blockers
        if not blockers:
            return SWAP, ("the default: the backup is loaded into a fresh database that replaces the live one "
                          "once complete, so the result is exactly the backup"), blockers
        return CLEAN, ("the fresh-database swap cannot run here (" + "; ".join(blockers) + "), so the restore "
                       "runs in place with pg_restore --clean --if-exists"), blockers

    # --- Plan ---------------------------------------------------------------------------------

    def _split(self, artifacts):
        """(the dump, the roles script or None: sets written before roles were stored have none)."""
        return self.artifact_name, self.roles_artifact if self.roles_artifact in artifacts else None

    def _roles_to_create(self, reader, roles_name, existing, options):
        """The backup's roles this server lacks (none to create with no_owner)."""
        if roles_name is None or options["no_owner"]:
            return []
        return [role for role in reader.facts_of(self.name).get("roles", []) if role not in existing]

    def preflight(self, reader, artifacts, options):
        if self.is_side_restore(options):
            return self.side_preflight(reader, artifacts, options)
        if self.absent(reader):
            return {"problems": [], "notes": [f"database {self.config['dbname']} did not exist when this backup was "
                                              "taken: the restore drops it"]}
        name, roles_name = self._split(artifacts)
        problems, notes = [], []
        archive = self._archive(reader, name)
        fmt = archive["format"]
        details = {"archive_format": f"{fmt[0]}.{fmt[1]}" if fmt else None,
                   "pg_restore": self._tool_version("pg_restore")[1]}
        problem = self._format_problem(reader, name, archive)
        if problem:
            return {"problems": [problem], "notes": notes, **details}
        toc = self._toc(archive["lines"])
        try:
            with self._admin(live_ok=True) as conn:
                state = self._state(conn)
                sessions = self._sessions(conn, self.config["dbname"]) if state["live"] else []
                leftovers = [r[0] for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
                    [self._side_prefix()]).fetchall()]
                roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        except ComponentError as exc:
            notes.append(f"cannot read the server's state: {exc}")
            return {"problems": problems, "notes": notes, **details}
        dbname, user = self.config["dbname"], state["user"]

        problem = self._tool_too_old("pg_restore", state["server_version_num"])
        if problem:
            problems.append(problem)
        mode, why, blockers = self._mode(state, options)
        details.update(mode=mode, mode_reason=why)
        notes.append(f"mode {mode}: {why}")
        if mode == SWAP and blockers:
            problems.append("the fresh-database swap cannot run here: " + "; ".join(blockers)
                            + ". Fix that, or restore in place with postgres.mode=clean.")
        if mode == CLEAN and state["live"] is None:
            problems.append(f"database {dbname} does not exist, and mode clean restores into an existing one: "
                            "use postgres.mode=auto")
        if mode == SWAP and state["live"] is None and not (state["superuser"] or state["createdb"]):
            problems.append(f"database {dbname} does not exist and role {user} may not create it: "
                            f"ALTER ROLE {user} CREATEDB, or create it first")

        to_create = self._roles_to_create(reader, roles_name, roles, options)
        details["roles_to_create"] = to_create
        if to_create and (state["superuser"] or state["createrole"]):
            notes.append(f"creates the role(s) the backup needs and this server lacks first, from {roles_name}: "
                         f"{', '.join(to_create)} (existing roles are left unchanged)")
            roles = roles | set(to_create)
        elif to_create:
            problems.append(f"the backup needs role(s) {', '.join(to_create)}, which do not exist on this server, and "
                            f"role {user} may not create roles: ALTER ROLE {user} CREATEROLE (or run {roles_name} "
                            "with psql as a superuser), or restore with postgres.no_owner=true (objects then belong "
                            f"to {user}).")
            roles = roles | set(to_create)  # one refusal for them is enough
        missing = sorted(o for o in toc["owners"] - roles if not any(r.endswith(" " + o) for r in roles))
        if missing and not options["no_owner"]:
            problems.append(f"objects in {name} belong to role(s) {', '.join(missing)}, which do not exist on this "
                            f"server: pg_restore would fail setting their owner. Create them (CREATE ROLE "
                            f"{missing[0]}) or restore with postgres.no_owner=true (objects then belong to {user}).")

        if state["live"] is not None:
            try:
                extra = self._not_in_backup(toc)
            except (ComponentError, psycopg.Error) as exc:
                extra = []
                notes.append(f"cannot list the live database's objects: {exc}")
            details["not_in_backup"] = extra
            shown = ", ".join(extra[:SHOWN]) + (f" and {len(extra) - SHOWN} more" if len(extra) > SHOWN else "")
            if extra and mode == SWAP:
                notes.append(f"the restore removes {len(extra)} object(s) of {dbname} that are not in the backup: "
                             f"{shown}")
            elif extra:
                notes.append(f"{len(extra)} object(s) of {dbname} are not in the backup and stay in place in clean "
                             f"mode: {shown}. One that depends on a backed-up object (a foreign key into one of "
                             "its tables, a view over one) makes the restore fail and roll back; the default "
                             "mode removes them.")

        details["sessions"] = [{"pid": pid, "user": u, "application_name": a, "client": c} for pid, u, a, c in sessions]
        if sessions:
            described = self._describe_sessions(sessions)
            if options["terminate_sessions"]:
                notes.append(f"{len(sessions)} other session(s) use {dbname} now ({described}); the restore ends "
                             "those still there (postgres.terminate_sessions=true)")
                others = {u for _p, u, _a, _c in sessions if u and u != user}
                if others and not (state["superuser"] or state["signal"]):
                    problems.append(f"ending sessions of {', '.join(sorted(others))} needs the right to signal "
                                    f"them: GRANT pg_signal_backend TO {user}, or stop those clients first")
            else:
                notes.append(f"{len(sessions)} other session(s) use {dbname} now ({described}): the restore "
                             "refuses unless they are gone by then (the pre_restore hooks should stop the app), or "
                             "ends them with postgres.terminate_sessions=true")
        if leftovers:
            notes.append("database(s) left by an interrupted restore (or one still running): "
                         f"{', '.join(leftovers)}; drop them with DROP DATABASE once no restore runs")
        if mode == CLEAN:
            notes.append(f"clean mode runs pg_restore {self._clean_plan(toc, state)[1]}")
        return {"problems": problems, "notes": notes, **details}

    # --- Restore ------------------------------------------------------------------------------

    def _side_prefix(self):
        return self._fit(self.config["dbname"], "__")

    @staticmethod
    def _fit(base, suffix):
        """``base + suffix`` within PostgreSQL's 63-byte identifiers (``base`` cut on a character)."""
        room = MAX_IDENTIFIER - len(suffix.encode())
        return base.encode()[:room].decode("utf-8", "ignore") + suffix

    def _side_name(self, label, base=None):
        return self._fit(base or self.config["dbname"], f"__{label}_{uuid.uuid4().hex[:8]}")

    def _drop_unfinished_loads(self, conn, dbname, log):
        """Drop the fresh databases a killed restore into ``dbname`` left half loaded (never swapped
        in: the live data is never among them). Only one restore runs at a time (the restore lock)."""
        prefix = self._side_name("restoring", dbname)[:-8]
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) AND length(datname) = %s",
                            [prefix, len(prefix) + 8]).fetchall()
        for (left,) in rows:
            if re.fullmatch(r"[0-9a-f]{8}", left[len(prefix):]):
                self._drop(left, log, what="a half-loaded database an interrupted restore left,")

    def _load_flags(self, options):
        """pg_restore's flags for a load into a fresh database: the restore's and the rehearsal's."""
        major, _ = self._tool_version("pg_restore")
        flags = ["--exit-on-error"]
        if major >= TRANSACTION_SIZE_SINCE:
            flags.append(f"--transaction-size={TRANSACTION_SIZE}")  # fewer commits, bounded locks
        return flags + (["--no-owner"] if options["no_owner"] else [])

    def _clean_plan(self, toc, state):
        """(flags, what the log and the plan say) for an in-place restore."""
        need, table = toc["locks"], state["lock_table"]
        if need <= table // 2:
            return ["--single-transaction"], "in one transaction (a failure changes nothing)"
        why = (f"the archive needs about {need} locks, more than half the server's lock table ({table} = "
               "max_locks_per_transaction × (max_connections + max_prepared_transactions))")
        if self._tool_version("pg_restore")[0] >= TRANSACTION_SIZE_SINCE:
            return ([f"--transaction-size={TRANSACTION_SIZE}"],
                    f"not in one transaction: {why}; in transactions of {TRANSACTION_SIZE} objects, and the safety "
                    "backup is the rollback")
        return [], f"not in one transaction: {why}; one object at a time, and the safety backup is the rollback"

    def _pg_restore(self, reader, name, dbname, flags):
        argv = [self._tool("pg_restore"), *self._conn_args(), *flags, "--dbname", dbname]
        with reader.open(name) as stream, Program(argv, env=self._env(), stdin=subprocess.PIPE) as restore:
            feed(stream, restore)

    def _hint(self, error):
        match = re.search(r'role "([^"]+)" does not exist', error)
        if match:
            return (f"{error} Create the role (CREATE ROLE {match.group(1)}) or restore with postgres.no_owner=true "
                    f"(objects then belong to {self.config['user']}).")
        return error

    def restore(self, reader, artifacts, options, log):
        if self.is_side_restore(options):  # first: it never touches the live database
            return self.side_restore(reader, artifacts, options, log)
        if self.absent(reader):  # the safety backup of a server that did not have the database yet
            self._drop(self.config["dbname"], log, what="the database that did not exist before,")
            return
        name, roles_name = self._split(artifacts)
        conn = None
        try:
            conn = self._admin(live_ok=options["mode"] != SWAP)
            state = self._state(conn)
        except (ComponentError, psycopg.Error) as exc:
            if conn is not None:
                conn.close()
            raise Unchanged(f"{self.name}: cannot start the restore: {str(exc).strip()}") from None
        with conn:
            problem = self._tool_too_old("pg_restore", state["server_version_num"])
            if problem:
                raise Unchanged(problem)
            mode, why, blockers = self._mode(state, options)
            log(f"{self.name}: mode {mode}: {why}")
            if mode == SWAP and blockers:
                raise Unchanged(f"{self.name}: the fresh-database swap cannot run here: {'; '.join(blockers)}. "
                                "Restore in place with postgres.mode=clean instead.")
            self._create_roles(conn, reader, roles_name, options, state, log)
            if mode == SWAP:
                self._restore_swap(conn, reader, name, options, state, log)
                return
        self._restore_clean(reader, name, options, state, log)

    def _create_roles(self, conn, reader, roles_name, options, state, log):
        """Run the backup's roles script in one transaction: the roles this server lacks are created,
        existing ones are left as they are (a restore never changes or drops a role, and the roles it
        created stay after a rollback). Each role's outcome is logged."""
        if roles_name is None or options["no_owner"]:
            return
        with reader.open(roles_name) as stream:
            script = b"".join(iter(stream.read, b"")).decode()
        notices = []

        def keep(notice):  # a notice is readable only while the handler runs
            notices.append(notice.message_primary)

        conn.add_notice_handler(keep)
        try:
            with conn.transaction():
                conn.execute(script)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise Unchanged(f"{self.name}: cannot create the roles the backup needs ({str(exc).strip()}): ALTER ROLE "
                            f"{state['user']} CREATEROLE, or restore with postgres.no_owner=true (objects then belong "
                            f"to {state['user']}). Nothing was changed.") from None
        except psycopg.Error as exc:
            raise Unchanged(f"{self.name}: {roles_name} failed ({str(exc).strip()}); no role was created and nothing "
                            "was changed.") from None
        finally:
            conn.remove_notice_handler(keep)
        for notice in notices:
            log(f"{self.name}: {notice}")

    def _restore_clean(self, reader, name, options, state, log):
        dbname = self.config["dbname"]
        if state["live"] is None:
            raise Unchanged(f"{self.name}: database {dbname} does not exist; mode clean restores into an existing "
                            "database (postgres.mode=auto creates it).")
        with self._admin(live_ok=True) as conn:
            sessions = self._sessions(conn, dbname)
            if sessions and options["terminate_sessions"]:
                self._end_sessions(conn, dbname, sessions, state, log)
            elif sessions:
                log(f"{self.name}: warning: {len(sessions)} other session(s) use {dbname} "
                    f"({self._describe_sessions(sessions)}); pg_restore waits for the locks they hold")
        flags, how = self._clean_plan(self._toc(self._archive(reader, name)["lines"] or []), state)
        atomic = flags == ["--single-transaction"]
        flags = [*flags, "--clean", "--if-exists", "--exit-on-error", *(["--no-owner"] if options["no_owner"] else [])]
        log(f"{self.name}: pg_restore {' '.join(flags)} into {dbname} from {name}, {how}")
        try:
            self._pg_restore(reader, name, dbname, flags)
        except ComponentError as exc:
            if atomic:
                raise Unchanged(f"{self._hint(str(exc))} (one transaction, rolled back: {dbname} is as it "
                                "was)") from None
            raise ComponentError(self._hint(str(exc))) from None

    def _restore_swap(self, conn, reader, name, options, state, log, dbname=None):
        """Load into a fresh database and swap it in as ``dbname`` (the live one, or a
        side-by-side target: postgres.database)."""
        dbname = dbname or self.config["dbname"]
        live = state["live"] if dbname == self.config["dbname"] else (self._exists(conn, dbname) or None)
        if live:
            self._clear_sessions(conn, dbname, options, state, log)
        self._drop_unfinished_loads(conn, dbname, log)
        fresh = self._side_name("restoring", dbname)
        flags = self._load_flags(options)
        swapped = False
        try:
            self._create_fresh(conn, fresh, state, self._owner_to_give(conn, reader, options, state))
            log(f"{self.name}: pg_restore {' '.join(flags)} from {name} into fresh database {fresh}; "
                f"{dbname} is not touched until it is complete")
            self._pg_restore(reader, name, fresh, flags)
            self._copy_properties(conn, fresh, state, log)
            fresh_oid = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", [fresh]).fetchone()[0]
            if live is None:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(fresh),
                                                                              sql.Identifier(dbname)))
                swapped = True
                log(f"{self.name}: created database {dbname} from the backup")
                return
            old = self._side_name("replaced", dbname)
            swapped = self._swap(conn, fresh, old, fresh_oid, options, state, log, dbname)
        except Exception as exc:
            if not swapped:
                dropped = self._drop(fresh, log)
                if isinstance(exc, Unchanged):
                    raise
                left = "was dropped" if dropped else "is left for the next restore to drop (or DROP DATABASE it)"
                raise Unchanged(f"{self.name}: the restore into fresh database {fresh} failed, so {dbname} was not "
                                f"touched and {fresh} {left}: {self._hint(str(exc).strip())}") from None
            raise
        log(f"{self.name}: swapped the restored database in as {dbname}")
        self._drop(old, log, what=f"the replaced database (the pre-restore {dbname})")

    def _swap(self, conn, fresh, old, fresh_oid, options, state, log, dbname=None):
        """Rename the live database (or ``dbname``) to ``old`` and ``fresh`` to its name in one
        transaction; a session that connects in between makes the rename fail (retried when we may
        end sessions). Promote (services/promote.py) swaps a side-by-side database in with it."""
        dbname = dbname or self.config["dbname"]
        attempts = 5 if options["terminate_sessions"] else 1
        for attempt in range(1, attempts + 1):
            self._clear_sessions(conn, dbname, options, state, log)
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(dbname),
                                                                                  sql.Identifier(old)))
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(fresh),
                                                                                  sql.Identifier(dbname)))
                return True
            except psycopg.errors.ObjectInUse as exc:
                if attempt == attempts:
                    raise Unchanged(f"{self.name}: a session connected to {dbname} while the restored database was "
                                    f"being swapped in ({str(exc).strip()}); {dbname} was not changed. Stop the "
                                    "clients, or restore with postgres.terminate_sessions=true.") from None
            except psycopg.OperationalError:
                # The connection broke: the commit may or may not have happened. Ask the server.
                with self._admin() as check:
                    row = check.execute("SELECT oid FROM pg_database WHERE datname = %s", [dbname]).fetchone()
                if row and row[0] == fresh_oid:
                    return True
                raise
        return False

    def _clear_sessions(self, conn, dbname, options, state, log):
        sessions = self._sessions(conn, dbname)
        if not sessions:
            return
        if not options["terminate_sessions"]:
            raise Unchanged(
                f"{self.name}: {len(sessions)} other session(s) still use database {dbname} "
                f"({self._describe_sessions(sessions)}), so the restored database cannot replace it; {dbname} was "
                "not changed. Stop those clients (the pre_restore hooks should stop the app), or restore with "
                "postgres.terminate_sessions=true to end them."
            )
        self._end_sessions(conn, dbname, sessions, state, log)

    def _end_sessions(self, conn, dbname, sessions, state, log):
        log(f"{self.name}: ending {len(sessions)} other session(s) on {dbname} "
            f"({self._describe_sessions(sessions)}): postgres.terminate_sessions=true")
        try:
            for pid, *_ in sessions:
                conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        except psycopg.errors.InsufficientPrivilege as exc:
            raise Unchanged(f"{self.name}: cannot end the other sessions on {dbname} ({str(exc).strip()}): "
                            f"GRANT pg_signal_backend TO {state['user']}, or stop those clients first. "
                            f"{dbname} was not changed.") from None
        deadline = time.monotonic() + 10
        while self._sessions(conn, dbname) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _create_fresh(self, conn, fresh, state, owner=None):
        """CREATE DATABASE ``fresh`` from template0 like the live database (owner, encoding, locale,
        tablespace); a new server's database gets the server's defaults and belongs to ``owner``
        (the backed-up database's owner) when we may give it, else to our user."""
        live = state["live"]
        parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(fresh))]
        if live is None and owner:
            parts.append(sql.SQL("OWNER {}").format(sql.Identifier(owner)))
        if live:
            row = live["row"]
            if live["can_set_owner"]:
                parts.append(sql.SQL("OWNER {}").format(sql.Identifier(live["owner"])))
            parts.append(sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(live["encoding"]), sql.Literal(row["datcollate"]), sql.Literal(row["datctype"])))
            provider = row.get("datlocprovider")
            locale = row.get("datlocale") or row.get("daticulocale")
            if provider == "i":
                parts.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(locale)))
                if row.get("daticurules"):
                    parts.append(sql.SQL("ICU_RULES {}").format(sql.Literal(row["daticurules"])))
            elif provider == "b":
                parts.append(sql.SQL("LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(sql.Literal(locale)))
            elif provider == "c":
                parts.append(sql.SQL("LOCALE_PROVIDER libc"))
            if live["tablespace"] != "pg_default":
                parts.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(live["tablespace"])))
        conn.execute(sql.SQL(" ").join(parts))

    def _owner_to_give(self, conn, reader, options, state):
        """The backed-up database's owner, for a database created anew, when it exists here and our
        user may give databases to it (None otherwise: the database is then ours)."""
        owner = reader.facts_of(self.name).get("database_owner")
        if state["live"] is not None or options["no_owner"] or not owner:
            return None
        privilege = "SET" if state["server_version_num"] >= 160000 else "MEMBER"
        row = conn.execute(f"SELECT pg_has_role(oid, '{privilege}') FROM pg_roles WHERE rolname = %s",
                           [owner]).fetchone()
        return owner if row and row[0] else None

    def _copy_properties(self, conn, fresh, state, log):
        """The live database's own properties, which a dump restored without --create does not
        carry: settings (ALTER DATABASE / ALTER ROLE ... IN DATABASE ... SET), grants on the
        database, its comment and connection limit. Applied after the load, before the swap."""
        live = state["live"]
        if live is None:
            return
        target = sql.Identifier(fresh)
        for role, config in live["settings"]:
            for item in config or []:
                key, _, value = item.partition("=")
                values = split_setting_list(value) if key in LIST_SETTINGS else [value]
                setting = sql.SQL("SET {} TO {}").format(sql.Identifier(key),
                                                         sql.SQL(", ").join(map(sql.Literal, values)))
                if role is None:
                    conn.execute(sql.SQL("ALTER DATABASE {} {}").format(target, setting))
                else:
                    conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} {}").format(sql.Identifier(role), target,
                                                                                    setting))
        if live["has_acl"]:
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC, {}").format(
                target, sql.Identifier(live["owner"])))
            for grantee, privilege, grantable in live["acl"]:
                conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(privilege), target, sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                    sql.SQL(" WITH GRANT OPTION" if grantable else "")))
        if live["comment"] is not None:
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(target, sql.Literal(live["comment"])))
        if live["row"]["datconnlimit"] != -1:
            conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
                target, sql.Literal(live["row"]["datconnlimit"])))

    def _drop(self, dbname, log, what=None):
        """Drop ``dbname`` if it exists; a failure is logged with the command to run (never raised:
        the outcome of the restore is already decided). Returns whether it is gone."""
        try:
            with self._admin(live_ok=dbname != self.config["dbname"]) as conn:
                force = sql.SQL(" WITH (FORCE)" if conn.info.server_version >= 130000 else "")
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(dbname), force))
            log(f"{self.name}: dropped {what + ' ' if what else ''}{dbname}")
            return True
        except (ComponentError, psycopg.Error) as exc:
            log(f"{self.name}: warning: could not drop {dbname} ({str(exc).strip()}); drop it by hand: "
                f'DROP DATABASE "{dbname}"')
            return False

    # --- Rehearsal ----------------------------------------------------------------------------

    def rehearse(self, reader, artifacts, log):
        """The restore's load (the same fresh database, the same pg_restore flags, the same copied
        properties) into a temporary database on the same server; counted, then dropped."""
        if self.absent(reader):
            return {}
        name, roles_name = self._split(artifacts)
        options = self.parse_restore_options({})
        scratch = f"rehearsal_{uuid.uuid4().hex[:16]}"
        with self._admin(live_ok=True) as conn:
            state = self._state(conn)
            self._check_tool_version("pg_restore", state["server_version_num"])
            try:
                self._create_roles(conn, reader, roles_name, options, state, log)
            except Unchanged as exc:
                raise ComponentError(f"{exc} The restore would fail the same way.") from None
            try:
                self._create_fresh(conn, scratch, state, self._owner_to_give(conn, reader, options, state))
            except psycopg.errors.InsufficientPrivilege:
                raise ComponentError(
                    f"{self.name}: the rehearsal needs to create a temporary database; grant it with "
                    f"ALTER ROLE {self.config['user']} CREATEDB."
                ) from None
        flags = self._load_flags(options)
        log(f"{self.name}: rehearsing {name} into temporary database {scratch} (the restore's load: "
            f"pg_restore {' '.join(flags)})")
        try:
            try:
                self._pg_restore(reader, name, scratch, flags)
            except ComponentError as exc:
                raise ComponentError(f"{self._hint(str(exc))} The restore would fail the same way.") from None
            if not self._swap_blockers(state):  # what the default restore copies, it copies too
                with self._admin(live_ok=True) as conn:
                    self._copy_properties(conn, scratch, state, log)
            self.rehearsal_probes = probes.check_probes(self, reader.facts_of(self.name), {"dbname": scratch}, log)
            with self.connect(dbname=scratch) as conn, conn.cursor() as cur:
                return self._counts(cur)
        finally:
            self._drop(scratch, log)


def split_setting_list(text):
    """A list setting's stored value (``"$user", public``) as its items, the way PostgreSQL's
    SplitGUCList reads it: comma-separated, double quotes around an item that needs them."""
    items, i, n = [], 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return items
        if text[i] == '"':
            j, item = i + 1, []
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        item.append('"')
                        j += 2
                        continue
                    break
                item.append(text[j])
                j += 1
            items.append("".join(item))
            i = j + 1
        else:
            j = i
            while j < n and text[j] != "," and not text[j].isspace():
                j += 1
            items.append(text[i:j])
            i = j
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == ",":
            i += 1
            continue
        return items
