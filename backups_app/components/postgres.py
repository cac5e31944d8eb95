"""PostgreSQL: ``pg_dump --format=custom`` streamed into ``<name>.dump``; restore with
``pg_restore --single-transaction --clean --if-exists`` so a failed restore changes nothing.

The dump and the row counts come from one exported snapshot, so the counts in the manifest are
exactly the rows in the dump. The password travels in PGPASSWORD, never in argv.
"""

import os
import re
import subprocess
import uuid

import psycopg
from psycopg import sql

from backups_app.components.base import Component
from backups_app.errors import ComponentError
from backups_app.parsing import parse_bool
from backups_app.procs import Program, feed, in_thread, run

TABLES_SQL = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 1, 2
"""


class PostgresComponent(Component):
    options = {
        "host": (str, "localhost"),
        "port": (int, 5432),
        "user": (str, "postgres"),
        "password": (str, ""),
        "dbname": (str, Component.REQUIRED),
        "bin_dir": (str, ""),
    }
    secret_options = ("password",)
    restore_options = {"no_owner": (parse_bool, False)}
    environment = {"host": "POSTGRES_HOST", "port": "POSTGRES_PORT", "user": "POSTGRES_USER",
                   "password": "POSTGRES_PASSWORD", "dbname": "POSTGRES_DB", "bin_dir": "PG_BIN_DIR"}
    configured_by = ("POSTGRES_DB",)
    backup_order = 10

    @property
    def artifact_name(self):
        return f"{self.name}.dump"

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

    @staticmethod
    def _counts(cursor):
        cursor.execute(TABLES_SQL)
        counts = {}
        for schema, table in cursor.fetchall():
            cursor.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            counts[table if schema == "public" else f"{schema}.{table}"] = cursor.fetchone()[0]
        return counts

    def _check_tool_version(self, tool, server_version_num):
        output = run([self._tool(tool), "--version"])
        match = re.search(r"(\d+)(?:\.(\d+))?", output)
        tool_major = int(match.group(1)) if match else 0
        server_major = server_version_num // 10000
        if tool_major < server_major:
            raise ComponentError(
                f"{tool} {tool_major} is older than the PostgreSQL {server_major} server and cannot dump it. "
                f"Install postgresql-client-{server_major} (apt-get install postgresql-client-{server_major}) "
                f"and set PG_BIN_DIR=/usr/lib/postgresql/{server_major}/bin."
            )
        return output.strip()

    def backup(self, writer, log):
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
                # The exact row counts are read in the same snapshot while pg_dump streams, so they
                # cost no extra time; the connection must stay open until pg_dump has started anyway.
                counts = {}
                counted = in_thread(lambda: counts.update(self._counts(cur)))
                try:
                    with Program(argv, env=self._env(), stdout=subprocess.PIPE) as dump:
                        writer.write_from(self.artifact_name, dump.proc.stdout)
                finally:
                    counted()
                log(f"{self.name}: dumped {sum(counts.values())} rows in {len(counts)} tables")
        return {"counts": counts, "server_version": server_version, "tool_version": tool_version}

    def inspect(self):
        with self.connect() as conn, conn.cursor() as cur:
            return self._counts(cur)

    def _pg_restore(self, reader, name, dbname, flags):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version_num')::int")
            self._check_tool_version("pg_restore", cur.fetchone()[0])
        argv = [self._tool("pg_restore"), *self._conn_args(), *flags, "--exit-on-error", "--dbname", dbname]
        with reader.open(name) as stream, Program(argv, env=self._env(), stdin=subprocess.PIPE) as restore:
            feed(stream, restore)

    def restore(self, reader, artifacts, options, log):
        (name,) = artifacts
        flags = ["--single-transaction", "--clean", "--if-exists"] + (["--no-owner"] if options["no_owner"] else [])
        log(f"{self.name}: pg_restore --single-transaction from {name}")
        self._pg_restore(reader, name, self.config["dbname"], flags)

    def rehearse(self, reader, artifacts, log):
        """Restore into a temporary database on the same server (needs CREATEDB), count, drop it."""
        (name,) = artifacts
        scratch = f"rehearsal_{uuid.uuid4().hex[:16]}"
        with self.connect(autocommit=True) as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
            except psycopg.errors.InsufficientPrivilege:
                raise ComponentError(
                    f"{self.name}: the rehearsal needs to create a temporary database; grant it with "
                    f"ALTER ROLE {self.config['user']} CREATEDB."
                ) from None
        log(f"{self.name}: rehearsing {name} into temporary database {scratch}")
        try:
            # Ownership and grants are not rehearsed: the scratch database belongs to our user.
            self._pg_restore(reader, name, scratch, ["--no-owner", "--no-privileges"])
            with self.connect(dbname=scratch) as conn, conn.cursor() as cur:
                return self._counts(cur)
        finally:
            with self.connect(autocommit=True) as conn:
                force = sql.SQL(" WITH (FORCE)" if conn.info.server_version >= 130000 else "")
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(scratch), force))
            log(f"{self.name}: dropped {scratch}")
