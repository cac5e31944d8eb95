"""Redis, logically: SCAN + pipelined DUMP/PTTL into ``<name>.dump.zst``, restored with pipelined
``RESTORE key ttl payload REPLACE ABSTTL``. Works against any Redis, managed ones that forbid SYNC
included.

The artifact is itself a stream of Redis commands in RESP (``SELECT db`` then one
``RESTORE key <absolute expiry ms> <payload> REPLACE ABSTTL`` per key), so the stock client restores
it by hand: ``zstd -dc redis.dump.zst | redis-cli --pipe``. Expiries are absolute (the source
server's clock), so TTLs do not stretch; Redis skips keys whose expiry has passed meanwhile.

Optionally (``rdb``) the server's own snapshot is also stored as ``<name>.rdb`` via
``redis-cli --rdb`` for a byte-exact by-hand restore; that needs SYNC, which managed services forbid.
"""

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import hiredis
import redis
from hiredis import pack_command
from redis.connection import parse_url

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components.base import Component
from backups_app.errors import ComponentError
from backups_app.parsing import choice, comma_list, parse_bool
from backups_app.procs import Program

BATCH = 1000
RESTORE = b"RESTORE"


def _dbs(value):
    return sorted({int(item) for item in comma_list(value)})


def split_password(url):
    """(url without its password, password): the password then travels only in the client's
    memory and in REDISCLI_AUTH, never in logs or argv. redis-py also reads ``password`` and
    ``username`` from the query (the user info wins); the username moves to the user info."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query)
    if parts.password is None and not given.keys() & {"password", "username"}:
        return url, ""
    password = unquote(parts.password) if parts.password else given.get("password", "")
    user = parts.username or quote(given.get("username", ""), safe="")
    hostport = parts.netloc.rpartition("@")[2]
    rest = urlencode([(key, value) for key, value in query if key not in ("password", "username")])
    # built by hand: urlunsplit drops the '//' of unix:///path
    return (f"{parts.scheme}://{user + '@' if user else ''}{hostport}{parts.path}"
            f"{'?' + rest if rest else ''}{'#' + parts.fragment if parts.fragment else ''}"), password


def read_commands(stream):
    """The commands of a RESP stream (what ``pack_command`` wrote), parsed in C by hiredis."""
    parser = hiredis.Reader()
    try:
        while chunk := stream.read(CHUNK_SIZE):
            parser.feed(chunk)
            while (command := parser.gets()) is not False:
                if not isinstance(command, list) or not command:
                    raise ComponentError(f"Redis dump is damaged: expected a command, got {str(command)[:40]}.")
                yield command
    except hiredis.ProtocolError as exc:
        raise ComponentError(f"Redis dump is damaged: {exc}") from None
    if parser.has_data():
        raise ComponentError("Redis dump is truncated: it ends inside a command.")


class RedisComponent(Component):
    options = {
        "url": (str, Component.REQUIRED),
        "password": (str, ""),
        "dbs": (_dbs, []),  # empty: every db that holds keys
        "rdb": (parse_bool, False),
        "batch": (int, BATCH),
    }
    secret_options = ("password",)
    restore_options = {"mode": (choice("exact", "merge"), "exact")}
    environment = {"url": "REDIS_URL", "dbs": "REDIS_DBS", "rdb": "REDIS_RDB"}
    configured_by = ("REDIS_URL",)
    backup_order = 40

    def __init__(self, name, options):
        super().__init__(name, options)
        url, password = split_password(self.config["url"])
        self.config["url"] = url
        self.config["password"] = self.config["password"] or password

    @property
    def dump_stem(self):
        return f"{self.name}.dump"

    def required_programs(self):
        return [("redis-cli", "apt-get install redis-tools (needed for REDIS_RDB).")] if self.config["rdb"] else []

    def _connection_kwargs(self, url=None):
        if url:  # a scratch server of our own (the rehearsal): no password of the live one
            return parse_url(url)
        return {**parse_url(self.config["url"]), "password": self.config["password"] or None}

    def _pool(self, db, url=None):
        """Connections to ``db`` (the URL's own db number does not limit which dbs are backed up)."""
        return redis.ConnectionPool(**{**self._connection_kwargs(url), "db": db, "socket_timeout": 60,
                                       "socket_connect_timeout": 10})

    def client(self, db=0, url=None):
        return redis.Redis(connection_pool=self._pool(db, url))

    @contextmanager
    def _connected(self, url=None):
        client = self.client(url=url)
        try:
            client.ping()
            yield client
        except redis.RedisError as exc:
            raise ComponentError(f"{self.name}: Redis at {url or self.config['url']}: {exc}") from None
        finally:
            client.close()

    def _keyspace(self, client):
        """{db index: keys} for the selected dbs (configured, or every one holding keys)."""
        found = {int(db[2:]): info["keys"] for db, info in client.info("keyspace").items()}
        selected = self.config["dbs"] or sorted(found)
        return {db: found.get(db, 0) for db in selected}

    def inspect(self):
        with self._connected() as client:
            return {f"db{db}": keys for db, keys in self._keyspace(client).items()}

    # Backup

    def backup(self, writer, log):
        with self._connected() as client:
            server_version = client.info("server")["redis_version"]
            dbs = list(self._keyspace(client))
            counts = {}
            with writer.open_compressed(self.dump_stem) as (name, out):
                for db in dbs:
                    out.write(pack_command(("SELECT", db)))
                    counts[f"db{db}"] = self._dump_db(db, out)
            log(f"{self.name}: dumped {sum(counts.values())} keys from db {', '.join(map(str, dbs)) or '(none)'} "
                f"into {name} (server {server_version})")
        if self.config["rdb"]:
            self._backup_rdb(writer, log)
        return {"counts": counts, "server_version": server_version, "method": "logical"}

    @contextmanager
    def _bare(self, db, url=None):
        """A bare connection on ``db``: we write RESP ourselves and read the replies in bulk, which
        skips the per-command Python work of a redis-py pipeline (most of the time at 200k keys)."""
        pool = self._pool(db, url)
        try:
            yield pool.get_connection()
        finally:
            pool.disconnect()

    @staticmethod
    def _exchange(conn, commands, replies):
        conn.send_packed_command([commands], check_health=False)
        return [conn.read_response() for _ in range(replies)]

    def _dump_db(self, db, out):
        written = 0
        with self.client(db) as client, self._bare(db) as conn:
            for keys in self._scan_batches(client):
                batch = b"".join(pack_command((b"DUMP", key)) + pack_command((b"PTTL", key)) for key in keys)
                *replies, (seconds, micros) = self._exchange(conn, batch + pack_command((b"TIME",)), 2 * len(keys) + 1)
                now_ms = int(seconds) * 1000 + int(micros) // 1000
                for key, payload, pttl in zip(keys, replies[::2], replies[1::2]):
                    if payload is None or pttl == -2:  # deleted or expired since SCAN
                        continue
                    expiry = now_ms + pttl if pttl >= 0 else 0
                    out.write(pack_command((RESTORE, key, expiry, payload, b"REPLACE", b"ABSTTL")))
                    written += 1
        return written

    def _scan_batches(self, client):
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, count=self.config["batch"])
            if keys:
                yield keys
            if cursor == 0:
                return

    def _cli_args(self):
        """redis-cli arguments for our connection; the password goes in REDISCLI_AUTH."""
        kwargs = self._connection_kwargs()
        if kwargs.get("path"):
            args = ["-s", kwargs["path"]]
        else:
            args = ["-h", kwargs.get("host", "localhost"), "-p", str(kwargs.get("port", 6379))]
        if kwargs.get("username"):
            args += ["--user", kwargs["username"]]
        if urlsplit(self.config["url"]).scheme == "rediss":
            args.append("--tls")
        return args

    def _backup_rdb(self, writer, log):
        argv = ["redis-cli", *self._cli_args(), "--rdb", "-"]
        env = {"REDISCLI_AUTH": self.config["password"]} if self.config["password"] else {}
        try:
            with Program(argv, env=env, stdout=subprocess.PIPE, what="redis-cli --rdb") as cli:
                writer.write_from(f"{self.name}.rdb", cli.proc.stdout)
        except ComponentError as exc:
            raise ComponentError(
                f"{self.name}: the RDB snapshot failed ({exc}). Servers that forbid SYNC (managed Redis) "
                "cannot give one: unset REDIS_RDB; the logical dump works everywhere."
            ) from None
        log(f"{self.name}: stored the server's RDB snapshot as {self.name}.rdb")

    # Restore

    def restore(self, reader, artifacts, options, log):
        dump = self._dump_artifact(artifacts)
        with self._connected() as client:
            if options["mode"] == "exact":
                in_backup = {int(db[2:]) for db in reader.facts_of(self.name).get("counts", {})}
                cleared = sorted(in_backup | set(self._keyspace(client)))
                for db in cleared:
                    with self.client(db) as db_client:
                        db_client.flushdb()
                log(f"{self.name}: exact mode: cleared db {', '.join(map(str, cleared))} before loading")
        counts, skipped = self._load(reader, dump)
        log(f"{self.name}: restored {sum(counts.values())} keys ({options['mode']} mode), "
            f"skipped {sum(skipped.values())} that expired since the backup")
        return counts

    def _dump_artifact(self, artifacts):
        dumps = [a for a in artifacts if a.startswith(self.dump_stem)]
        if len(dumps) != 1:
            raise ComponentError(f"{self.name}: this backup has no logical dump ({self.dump_stem}.*) to restore.")
        return dumps[0]

    def _load(self, reader, dump, url=None):
        """Replay the dump's RESTOREs in batches; returns ({"db<n>": keys restored}, {"db<n>": keys
        skipped because they expired since the backup})."""
        counts, skipped, db, batch = {}, {}, None, []
        with ExitStack() as stack:
            conn = None
            try:
                with reader.open_decompressed(dump) as stream:
                    for command in read_commands(stream):
                        if command[0] == b"SELECT":
                            self._flush(conn, batch)
                            db = int(command[1])
                            conn = stack.enter_context(self._bare(db, url))
                            counts[f"db{db}"] = skipped[f"db{db}"] = 0
                        elif command[0] == RESTORE and conn is not None:
                            expiry = int(command[2])
                            if expiry and expiry <= time.time() * 1000:
                                skipped[f"db{db}"] += 1  # expired since the backup: Redis would drop it too
                                continue
                            counts[f"db{db}"] += 1
                            batch.append(pack_command(tuple(command)))
                            if len(batch) >= self.config["batch"]:
                                self._flush(conn, batch)
                        else:
                            raise ComponentError(f"{self.name}: unexpected command {command[0][:20]!r} in {dump}.")
                    self._flush(conn, batch)
            except redis.RedisError as exc:
                raise ComponentError(f"{self.name}: RESTORE failed: {exc}") from None
        return counts, skipped

    def _flush(self, conn, batch):
        if batch:
            self._exchange(conn, b"".join(batch), len(batch))
            batch.clear()

    def rehearse(self, reader, artifacts, log):
        """Load the dump into a private redis-server on a unix socket in a temporary folder."""
        dump = self._dump_artifact(artifacts)
        # In the system's temp folder, not the spool: a unix socket path must stay under 108 bytes.
        folder = tempfile.mkdtemp(prefix="redis-rehearsal-")
        socket = os.path.join(folder, "redis.sock")
        url = f"unix://{socket}"
        argv = ["redis-server", "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "",
                "--appendonly", "no", "--dir", folder, "--logfile", "redis.log", "--databases", "256"]
        try:
            server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        except FileNotFoundError:
            shutil.rmtree(folder, ignore_errors=True)
            raise ComponentError("redis-server is not installed; the rehearsal needs it "
                                 "(apt-get install redis-server).") from None
        try:
            self._wait_for(socket, server, folder)
            counts, skipped = self._load(reader, dump, url=url)
            with self._connected(url=url) as client:
                loaded = sum(info["keys"] for info in client.info("keyspace").values())
        finally:
            server.terminate()
            server.wait()
            shutil.rmtree(folder, ignore_errors=True)
        log(f"{self.name}: rehearsal loaded {loaded} keys into a temporary redis-server; "
            f"{sum(skipped.values())} more had expired since the backup")
        # Keys that expired since the backup were in it and would be restored if still alive.
        return {db: counts[db] + skipped[db] for db in counts}

    def _wait_for(self, socket, server, folder, timeout=10):
        deadline = time.monotonic() + timeout
        while not os.path.exists(socket):
            if server.poll() is not None or time.monotonic() > deadline:
                log_path = os.path.join(folder, "redis.log")
                tail = open(log_path, errors="replace").read()[-2000:] if os.path.exists(log_path) else ""
                raise ComponentError(f"{self.name}: the rehearsal redis-server did not start: {tail or 'no output'}")
            time.sleep(0.05)
