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
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
from redis.connection import parse_url

from backups_app.components.base import Component, choice, comma_list, parse_bool
from backups_app.errors import ComponentError
from backups_app.procs import Program

BATCH = 1000
RESTORE = b"RESTORE"


def _dbs(value):
    return sorted({int(item) for item in comma_list(value)})


def split_password(url):
    """(url without its password, password): the password then travels only in the client's
    memory and in REDISCLI_AUTH, never in logs or argv."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, ""
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}@{hostport}" if user else hostport
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        out += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
    return b"".join(out)


class RespReader:
    """Reads the commands back from a RESP stream (what ``resp_command`` wrote), in chunks."""

    def __init__(self, stream):
        self._stream = stream
        self._buffer = bytearray()

    def _fill(self, wanted):
        while len(self._buffer) < wanted:
            chunk = self._stream.read(1024 * 1024)
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def _line(self):
        while (end := self._buffer.find(b"\r\n")) < 0:
            if not self._fill(len(self._buffer) + 1):
                return None
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 2]
        return line

    def _bulk(self):
        header = self._line()
        if not header or header[:1] != b"$":
            raise ComponentError(f"Redis dump is damaged: expected a bulk string, got {header[:20]!r}.")
        size = int(header[1:])
        if not self._fill(size + 2):
            raise ComponentError("Redis dump is truncated.")
        value = bytes(self._buffer[:size])
        del self._buffer[:size + 2]
        return value

    def __iter__(self):
        while (header := self._line()) is not None:
            if header[:1] != b"*":
                raise ComponentError(f"Redis dump is damaged: expected a command, got {header[:20]!r}.")
            yield [self._bulk() for _ in range(int(header[1:]))]


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
        return {**parse_url(url or self.config["url"]), "password": self.config["password"] or None}

    def client(self, db=0, url=None):
        """A client on ``db`` (the URL's own db number does not limit which dbs are backed up)."""
        kwargs = {**self._connection_kwargs(url), "db": db, "socket_timeout": 60, "socket_connect_timeout": 10}
        return redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))

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
                    out.write(resp_command("SELECT", db))
                    counts[f"db{db}"] = self._dump_db(db, out)
            log(f"{self.name}: dumped {sum(counts.values())} keys from db {', '.join(map(str, dbs)) or '(none)'} "
                f"into {name} (server {server_version})")
        if self.config["rdb"]:
            self._backup_rdb(writer, log)
        return {"counts": counts, "server_version": server_version, "method": "logical"}

    def _dump_db(self, db, out):
        client = self.client(db)
        try:
            written = 0
            for keys in self._scan_batches(client):
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.dump(key)
                    pipe.pttl(key)
                pipe.time()
                *replies, (seconds, micros) = pipe.execute()
                now_ms = seconds * 1000 + micros // 1000
                for key, payload, pttl in zip(keys, replies[::2], replies[1::2]):
                    if payload is None or pttl == -2:  # deleted or expired since SCAN
                        continue
                    expiry = now_ms + pttl if pttl >= 0 else 0
                    out.write(resp_command(RESTORE, key, expiry, payload, "REPLACE", "ABSTTL"))
                    written += 1
            return written
        finally:
            client.close()

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
            f"skipped {skipped} that expired since the backup")
        return counts

    def _dump_artifact(self, artifacts):
        dumps = [a for a in artifacts if a.startswith(self.dump_stem)]
        if len(dumps) != 1:
            raise ComponentError(f"{self.name}: this backup has no logical dump ({self.dump_stem}.*) to restore.")
        return dumps[0]

    def _load(self, reader, dump, url=None):
        """Replay the dump through pipelines of RESTORE; returns ({"db<n>": keys}, skipped)."""
        counts, skipped, client, pipe = {}, 0, None, None
        try:
            with reader.open_decompressed(dump) as stream:
                for command in RespReader(stream):
                    if command[0] == b"SELECT":
                        if pipe is not None:
                            pipe.execute()
                            client.close()
                        db = int(command[1])
                        client = self.client(db, url=url)
                        pipe = client.pipeline(transaction=False)
                        counts[f"db{db}"] = 0
                    elif command[0] == RESTORE and pipe is not None:
                        expiry = int(command[2])
                        if expiry and expiry <= time.time() * 1000:
                            skipped += 1  # expired since the backup: Redis would drop it anyway
                            continue
                        counts[f"db{db}"] += 1
                        pipe.execute_command(*command)
                        if len(pipe) >= self.config["batch"]:
                            pipe.execute()
                    else:
                        raise ComponentError(f"{self.name}: unexpected command {command[0][:20]!r} in {dump}.")
                if pipe is not None:
                    pipe.execute()
        except redis.RedisError as exc:
            raise ComponentError(f"{self.name}: RESTORE failed: {exc}") from None
        finally:
            if client is not None:
                client.close()
        return counts, skipped

    def rehearse(self, reader, artifacts, log):
        """Load the dump into a private redis-server on a unix socket in a temporary folder."""
        dump = self._dump_artifact(artifacts)
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
                loaded = {f"db{int(db[2:])}": info["keys"] for db, info in client.info("keyspace").items()}
        finally:
            server.terminate()
            server.wait()
            shutil.rmtree(folder, ignore_errors=True)
        log(f"{self.name}: rehearsal loaded {sum(loaded.values())} keys into a temporary redis-server "
            f"({skipped} expired since the backup)")
        return {db: loaded.get(db, 0) for db in counts}

    def _wait_for(self, socket, server, folder, timeout=10):
        deadline = time.monotonic() + timeout
        while not os.path.exists(socket):
            if server.poll() is not None or time.monotonic() > deadline:
                log_path = os.path.join(folder, "redis.log")
                tail = open(log_path, errors="replace").read()[-2000:] if os.path.exists(log_path) else ""
                raise ComponentError(f"{self.name}: the rehearsal redis-server did not start: {tail or 'no output'}")
            time.sleep(0.05)
