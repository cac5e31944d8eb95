"""Redis, logically: SCAN + pipelined DUMP/PEXPIRETIME into ``<name>.dump.zst``, restored with
pipelined ``RESTORE key <expiry> payload REPLACE ABSTTL``; both overlap their round trips
(``Pipelined``: a batch is sent before the replies of the one before it are read). Works against any Redis or Valkey,
managed ones that forbid SYNC included. Into dbs that hold nothing else (a restore's spares, the
rehearsal's server) each db's section of the dump goes to the server as stored (``BulkLoad``: the
manifest gives each section's size), with no per-key work in Python.

The artifact is itself a stream of Redis commands in RESP (``SELECT db`` then one
``RESTORE key <absolute expiry ms> <payload> REPLACE ABSTTL`` per key), so the stock client restores
it by hand: ``zstd -dc redis.dump.zst | redis-cli --pipe``. Expiries are absolute (the source
server's clock), so TTLs do not stretch; Redis skips keys whose expiry has passed meanwhile. Servers
with PEXPIRETIME (Redis 7+, Valkey) give each key's exact expiry, so a round trip keeps it to the
millisecond; older ones give the TTL, and the expiry is computed from the server's clock after the
batch (1–4 ms late).

An exact restore loads every restored db into a spare, empty database index (marked with the key
``MARKER`` while it is one), then switches them all in with ``SWAPDB`` in one MULTI/EXEC and
empties the spares (the old data). A failure or a kill before the switch leaves the live dbs as
they were; the spares a killed restore leaves are emptied by the next restore and never backed up.
Servers or users without SWAPDB or SELECT (Redis < 4, cluster mode, an ACL that forbids them), or
without enough empty indexes or memory for a second copy, are flushed then loaded instead (the
safety backup covers that), and the plan says so. A merge restore writes into the live dbs.

Optionally (``rdb``) the server's own snapshot is also stored as ``<name>.rdb`` via
``redis-cli --rdb`` for a byte-exact by-hand restore; that needs SYNC, which managed services forbid.

``redis.db=N`` and ``redis.keys=PATTERN`` restore into another database index, or some keys only
(components/_redis_side.py).
"""

import os
import re
import select
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
from redis.exceptions import NoPermissionError

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components._redis_side import SideBySide, db_index
from backups_app.components.base import Component
from backups_app.errors import ComponentError, Unchanged
from backups_app.parsing import choice, comma_list, parse_bool
from backups_app.procs import Program

BATCH = 1000
RESTORE = b"RESTORE"
OK = b"+OK\r\n"
NOT_YET = object()  # what the hiredis parser returns while no whole reply is buffered
#: ``pack_command((RESTORE, key, expiry, payload, b"REPLACE", b"ABSTTL"))``, byte for byte, by one
#: bytes format: a third of the per-key cost of packing at a million keys.
RESTORE_FORMAT = b"*6\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"
#: The key that marks a database index as a restore's spare (never live data).
MARKER = b"backups-app:spare"
#: Each command a restore may run, with arguments that make it do nothing when the plan runs it to
#: learn whether the server lets this user run it: a stray argument (FLUSHDB, SET), a payload that
#: is not one (RESTORE), an index that is not one (SWAPDB); the marker is never in db 0.
PROBES = {
    "SELECT": ("SELECT", 0),
    "FLUSHDB": ("FLUSHDB", "probe"),
    "RESTORE": ("RESTORE", MARKER, 0, "probe"),
    "SET": ("SET", MARKER, "probe", "probe"),
    "DEL": ("DEL", MARKER),
    "SWAPDB": ("SWAPDB", "probe", "probe"),
}
#: The RDB version each release writes and the newest it reads, newest release first: the target's
#: when it holds no key to DUMP. Valkey 9 reads Redis's 12+ only with ``rdb-version-check relaxed``.
RDB_VERSIONS = {
    "redis": (((8, 6), 13), ((7, 4), 12), ((7, 2), 11), ((7, 0), 10), ((5, 0), 9), ((4, 0), 8), ((3, 2), 7),
              ((2, 6), 6)),
    "valkey": (((9, 0), 80), ((7, 2), 11)),
}


def _dbs(value):
    return sorted({int(item) for item in comma_list(value)})


def server_of(info):
    """(name, version) from INFO server: Valkey says ``redis_version:7.2.4`` whatever its release,
    and gives its own in ``valkey_version``."""
    name = info.get("server_name") or "redis"
    return name, str(info.get(f"{name}_version") or info["redis_version"])


#: A DUMP payload ends with its RDB version (2 bytes, little-endian) and a CRC64 (8 bytes).
RDB_VERSION_BYTES = slice(-10, -8)


def payload_rdb_version(payload):
    return int.from_bytes(payload[RDB_VERSION_BYTES], "little")


def _release(version):
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def release_rdb_version(name, version):
    return next((rdb for since, rdb in RDB_VERSIONS.get(name, RDB_VERSIONS["redis"]) if _release(version) >= since), 6)


def first_release(name, rdb):
    """The first release of ``name`` that reads RDB version ``rdb`` ("7.4"), or None."""
    fits = [since for since, reads in RDB_VERSIONS.get(name, RDB_VERSIONS["redis"]) if reads >= rdb]
    return ".".join(map(str, min(fits))) if fits else None


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


def refusal(client, argv, user=None):
    """Why the server will not run ``argv`` for this connection's user, or None: ACL DRYRUN for
    ``user`` where it may run (Redis 7+), else the command itself (a harmless form from PROBES)."""
    if user:
        try:
            reply = client.execute_command("ACL", "DRYRUN", user, *argv)
            return None if reply == b"OK" else reply.decode(errors="replace")
        except redis.ResponseError:
            pass  # no DRYRUN (Redis < 7) or not for this user: ask the command itself
    try:
        client.execute_command(*argv)
    except NoPermissionError as exc:
        return str(exc)
    except redis.ResponseError as exc:
        if "unknown command" in str(exc):
            return f"the server has no {argv[0]} command (renamed or disabled in its configuration)"
    return None


def restore_command(key, expiry, payload):
    expiry = b"%d" % expiry
    return RESTORE_FORMAT % (len(key), key, len(expiry), expiry, len(payload), payload)


def per_key_format(*names):
    """A bytes format that packs the commands ``names`` each on one key: ``% (len(key), key) * n``."""
    return b"".join(b"*2\r\n$%d\r\n%b\r\n$%%d\r\n%%b\r\n" % (len(name), name) for name in names)


def raise_reply_error(replies):
    """ResponseError for the first error reply among ``replies`` (hiredis's), if there is one."""
    if hiredis.ReplyError in map(type, replies):
        raise redis.ResponseError(str(next(r for r in replies if isinstance(r, hiredis.ReplyError))))


def _chunks(stream, size):
    """The next ``size`` bytes of ``stream``, a chunk at a time."""
    while size:
        chunk = stream.read(min(size, CHUNK_SIZE))
        if not chunk:
            raise ComponentError("Redis dump is truncated: it ends before the size its manifest gives.")
        yield chunk
        size -= len(chunk)


class BulkLoad:
    """Commands sent as stored, on one bare connection, each answered +OK: the replies are counted
    in bulk as they come (the server's reply buffer stays small); any other reply raises
    ResponseError."""

    def __init__(self, conn):
        self.sock, self.answered, self.tail = conn._sock, 0, b""

    def send(self, stream, size):
        """Send the next ``size`` bytes of ``stream``."""
        for chunk in _chunks(stream, size):
            self.sock.sendall(chunk)
            while select.select([self.sock], [], [], 0)[0]:
                self._take(self._received())

    def wait(self, commands):
        """Read the replies until ``commands`` commands were answered."""
        while self.answered < commands or self.tail:
            self._take(self._received())
        if self.answered != commands:
            raise ComponentError(f"Redis dump does not match its manifest: {self.answered} commands answered "
                                 f"where it counts {commands}.")

    def _received(self):
        data = self.sock.recv(CHUNK_SIZE)
        if not data:
            raise redis.ConnectionError("Connection closed by server.")
        return data

    def _take(self, data):
        data = self.tail + data
        whole = len(data) - len(data) % len(OK)
        if data.count(OK, 0, whole) * len(OK) != whole:  # not only OKs: find the error among them
            parser = hiredis.Reader(notEnoughData=NOT_YET)
            parser.feed(data)
            raise_reply_error(list(iter(parser.gets, NOT_YET)))
            raise redis.ResponseError(f"unexpected reply {data[:40]!r}")
        self.answered, self.tail = self.answered + whole // len(OK), data[whole:]


class Pipelined:
    """One bare connection whose commands go out in batches, each batch's replies read after the next
    batch was sent (the server works while we read), off the socket in bulk and parsed by hiredis
    in C: no per-reply Python of redis-py. Every reply is checked: an error reply raises ResponseError.
    The server buffers the replies we have not read yet (at most two batches)."""

    def __init__(self, conn):
        self.conn, self.parser, self.unread, self.ahead = conn, hiredis.Reader(notEnoughData=NOT_YET), 0, []

    def send(self, packed, replies):
        """Send ``packed`` (``replies`` commands), then read the replies of the batch sent before it."""
        self.conn.send_packed_command([packed], check_health=False)
        self.drain()
        self.unread = replies

    def drain(self):
        self.read(self.unread)
        self.unread = 0

    def read(self, count):
        """The next ``count`` replies (the parser's loop runs in C: ``iter(gets, NOT_YET)``; replies
        parsed beyond them wait in ``ahead``)."""
        replies = self.ahead
        while True:
            replies += iter(self.parser.gets, NOT_YET)
            if len(replies) >= count:
                break
            data = self.conn._sock.recv(CHUNK_SIZE)
            if not data:
                raise redis.ConnectionError("Connection closed by server.")
            self.parser.feed(data)
        replies, self.ahead = replies[:count], replies[count:]
        raise_reply_error(replies)
        return replies


class RedisComponent(SideBySide, Component):
    options = {
        "url": (str, Component.REQUIRED),
        "password": (str, ""),
        "dbs": (_dbs, []),  # empty: every db that holds keys
        "rdb": (parse_bool, False),
        "batch": (int, BATCH),
    }
    secret_options = ("password",)
    restore_options = {"mode": (choice("exact", "merge"), "exact"), "db": (db_index, None),
                       "source_db": (db_index, None), "keys": (str, "")}
    target_options = SideBySide.target_options
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

    def _held(self, client):
        """({db index: keys} of the dbs holding keys, [spare dbs a killed restore left behind])."""
        found, spares = {}, []
        for name, info in client.info("keyspace").items():
            db = int(name[2:])
            with self.client(db) as db_client:
                if db_client.exists(MARKER):
                    spares.append(db)
                else:
                    found[db] = info["keys"]
        return found, spares

    def _keyspace(self, client):
        """{db index: keys} for the selected dbs (configured, or every one holding keys)."""
        found, _spares = self._held(client)
        selected = self.config["dbs"] or sorted(found)
        return {db: found.get(db, 0) for db in selected}

    def inspect(self):
        with self._connected() as client:
            return {f"db{db}": keys for db, keys in self._keyspace(client).items()}

    def estimate(self):
        return {"items_total": sum(self.inspect().values()), "items_unit": "keys"}

    # Backup

    def backup(self, writer, log):
        with self._connected() as client:
            server_name, server_version = server_of(client.info("server"))
            exact = refusal(client, ("PEXPIRETIME", MARKER)) is None
            dbs = list(self._keyspace(client))
            counts, sections, rdb = {}, [], 0
            with writer.open_compressed(self.dump_stem) as (name, out):
                for db in dbs:
                    out.write(pack_command(("SELECT", db)))
                    counts[f"db{db}"], size, db_rdb = self._dump_db(db, out, exact, writer.meter)
                    sections.append({"db": db, "bytes": size})  # in the dump's order (the manifest sorts keys)
                    rdb = max(rdb, db_rdb)
            log(f"{self.name}: dumped {sum(counts.values())} keys from db {', '.join(map(str, dbs)) or '(none)'} "
                f"into {name} ({server_name} {server_version}, RDB version {rdb or 'none'}, "
                f"{'exact expiry times' if exact else 'expiry times from TTLs: no PEXPIRETIME'})")
        if self.config["rdb"]:
            self._backup_rdb(writer, log)
        return {"counts": counts, "sections": sections, "server_name": server_name,
                "server_version": server_version, "rdb_version": rdb, "expiry": "exact" if exact else "from-ttl",
                "method": "logical"}

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

    def _dump_db(self, db, out, exact, meter):
        """Write the RESTOREs of ``db``; returns (keys written, bytes written, highest RDB version of
        their payloads).
        ``exact``: PEXPIRETIME gives each absolute expiry; else it is the server's time plus PTTL.
        Each batch of keys scanned counts in the progress (``meter``). One round trip per batch, and
        the server works on the next while we write this one: each message asks for the next SCAN
        first, then the DUMPs and expiries of the keys the last SCAN gave."""
        written, size, rdb = 0, 0, 0
        asks = per_key_format(b"DUMP", b"PEXPIRETIME" if exact else b"PTTL")
        with self._bare(db) as conn:
            replies = Pipelined(conn)
            conn.send_packed_command([pack_command((b"SCAN", 0, b"COUNT", self.config["batch"]))], check_health=False)
            scanning, dumping = True, []
            while scanning or dumping:
                keys = []
                if scanning:
                    ((cursor, keys),) = replies.read(1)
                    scanning = cursor != b"0"
                    message = [pack_command((b"SCAN", cursor, b"COUNT", self.config["batch"]))] if scanning else []
                    message += [asks % (len(key), key, len(key), key) for key in keys]
                    if message:
                        conn.send_packed_command([b"".join(message) + (pack_command((b"TIME",)) if keys else b"")],
                                                 check_health=False)
                if dumping:
                    *found, (seconds, micros) = replies.read(2 * len(dumping) + 1)
                    base = 0 if exact else int(seconds) * 1000 + int(micros) // 1000
                    kept = [(key, payload, expires) for key, payload, expires in zip(dumping, found[::2], found[1::2])
                            if payload is not None and expires != -2]  # else deleted or expired since SCAN
                    restores = b"".join(restore_command(key, base + expires if expires >= 0 else 0, payload)
                                        for key, payload, expires in kept)
                    out.write(restores)
                    size += len(restores)
                    # one payload of each RDB version in the batch (one or two), not every payload
                    each = {payload[RDB_VERSION_BYTES]: payload for _key, payload, _expires in kept}.values()
                    rdb = max([rdb, *map(payload_rdb_version, each)])
                    written += len(kept)  # one write per batch: the compressor's work is per call
                    meter.add_items(len(dumping))
                dumping = keys
        return written, size, rdb

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

    def _restored_dbs(self, reader, client):
        """The dbs an exact restore replaces: the backup's and the live selected ones."""
        in_backup = {int(db[2:]) for db in reader.facts_of(self.name).get("counts", {})}
        return sorted(in_backup | set(self._keyspace(client)))

    def _spares(self, client, dbs):
        """({restored db: spare db}, None) to load ``dbs`` beside the live data, or (None, why not).
        Spares are empty indexes other than 0, the highest first (apps use the low ones)."""
        unavailable = refusal(client, PROBES["SWAPDB"]) or refusal(client, PROBES["SELECT"])
        if unavailable:
            return None, f"no SWAPDB: {unavailable}"
        try:
            total, known = int(client.config_get("databases")["databases"]), True
        except (redis.ResponseError, KeyError):
            total, known = 16, False  # CONFIG refused (managed servers): Redis's default, each one tried
        found, _left = self._held(client)
        free = [db for db in range(total - 1, 0, -1) if db not in dbs and db not in found
                and (known or self._selectable(db))]
        if len(free) < len(dbs):
            return None, (f"{len(dbs)} empty database indexes besides the restored ones are needed, "
                          f"{len(free)} are free (CONFIG SET databases, or restore fewer dbs)")
        memory = client.info("memory")
        if memory.get("maxmemory") and 2 * memory["used_memory"] > memory["maxmemory"]:
            return None, "maxmemory leaves no room for a second copy of the data"
        return dict(zip(dbs, free)), None

    def _selectable(self, db):
        try:
            with self.client(db) as db_client:
                return db_client.ping()
        except redis.ResponseError:  # DB index is out of range
            return False

    def _empty(self, dbs, log=None):
        for db in dbs:
            with self.client(db) as db_client:
                db_client.flushdb(asynchronous=True)
        if log and dbs:
            log(f"{self.name}: emptied spare db {', '.join(map(str, dbs))}")

    def _load_beside(self, reader, dump, spares):
        """Load the dump into the spare dbs ({backup db: spare db}), each marked first; on any
        failure the spares are emptied again and Unchanged is raised (the live dbs were not touched)."""
        try:
            for spare in spares.values():
                with self.client(spare) as spare_client:
                    spare_client.flushdb()
                    spare_client.set(MARKER, "loading")
            return self._load(reader, dump, into=spares)
        except Exception as exc:
            self._empty(spares.values())
            raise Unchanged(f"{self.name}: loading beside the live data failed ({exc}); the live data was not "
                            "touched") from None

    def _switch(self, spares, log):
        """Swap every spare in with one MULTI/EXEC; the spares then hold the old data (still marked)
        and are emptied."""
        commands = [("MULTI",)]
        for live, spare in spares.items():
            commands += [("SELECT", spare), ("DEL", MARKER), ("SWAPDB", live, spare), ("SET", MARKER, "replaced")]
        commands.append(("EXEC",))
        try:
            with self._bare(0) as conn:
                *_queued, done = self._exchange(conn, b"".join(pack_command(c) for c in commands), len(commands))
        except redis.ResponseError as exc:  # refused while queuing: EXEC ran nothing
            self._empty(spares.values())
            raise Unchanged(f"{self.name}: the switch was refused ({exc}); the live data was not touched") from None
        failed = [str(reply) for reply in done if isinstance(reply, Exception)]
        self._empty(spares.values(), log)
        if failed:
            raise ComponentError(f"{self.name}: SWAPDB failed: {'; '.join(failed)}")
        log(f"{self.name}: switched in " + ", ".join(f"db {db} (loaded in {spare})" for db, spare in spares.items()))

    def restore(self, reader, artifacts, options, log):
        dump = self._dump_artifact(artifacts)
        if self.is_partial(options):
            return self.restore_part(reader, dump, options, log)
        with self._connected() as client:
            self._empty(self._held(client)[1], log)  # a killed restore's spares
            spares = reason = None
            if options["mode"] == "exact":
                dbs = self._restored_dbs(reader, client)
                spares, reason = self._spares(client, dbs)
                if spares is None:
                    log(f"{self.name}: flushing then loading db {', '.join(map(str, dbs))}, not atomically ({reason}); "
                        "the safety backup covers a failure")
                    for db in dbs:
                        with self.client(db) as db_client:
                            db_client.flushdb()
        if spares:
            counts, skipped = self._load_beside(reader, dump, spares)
            self._switch(spares, log)
        else:
            counts, skipped = self._load(reader, dump)
        log(f"{self.name}: restored {sum(counts.values())} keys ({options['mode']} mode), "
            f"skipped {sum(skipped.values())} that expired since the backup")
        return counts

    def preflight(self, reader, artifacts, options):
        facts = reader.facts_of(self.name)
        with self._connected() as client:
            name, version = server_of(client.info("server"))
            readable = self._target_rdb_version(client, name, version)
            problems, notes = [], []
            needed = facts.get("rdb_version") or 0
            if needed > readable:
                at_least = first_release(facts.get("server_name", "redis"), needed)
                problems.append(
                    f"the backup's DUMP payloads are RDB version {needed} (from {facts.get('server_name', 'redis')} "
                    f"{facts.get('server_version', '?')}); {name} {version} here reads up to RDB version {readable}, "
                    f"so RESTORE would fail: restore into {facts.get('server_name', 'redis')} "
                    f"{at_least or facts.get('server_version', '?')} or later")
            commands = ["SELECT", "RESTORE"]
            problems += self.side_problems(client, reader, options)
            if options["mode"] == "exact" and not self.is_partial(options):
                dbs = self._restored_dbs(reader, client)
                spares, reason = self._spares(client, dbs)
                commands.append("FLUSHDB")
                if spares:
                    commands += ["SET", "DEL", "SWAPDB"]
                    notes.append("loads " + ", ".join(f"db {db} into spare db {s}" for db, s in spares.items())
                                 + " and switches them in with SWAPDB in one step; the live data is untouched "
                                   "until then")
                else:
                    notes.append(f"flushes then loads db {', '.join(map(str, dbs))}, not atomically ({reason}); "
                                 "the safety backup covers a failure")
            problems += self._denied(client, commands)
        return {"problems": problems, "notes": notes,
                "server": {"name": name, "version": version, "rdb_version": readable}}

    def _denied(self, client, commands):
        """Problems naming the fix for the restore's commands this user may not run."""
        try:
            user = client.execute_command("ACL", "WHOAMI").decode()
        except redis.ResponseError:
            user = None  # Redis < 6: no ACL users (a renamed command is still found)
        refused = {command: refusal(client, PROBES[command], user) for command in commands}
        refused = {command: reason for command, reason in refused.items() if reason}
        if not refused:
            return []
        grant = " ".join(f"+{command.lower()}" for command in refused)
        if any("key" in reason for reason in refused.values()):
            grant += " allkeys"
        fix = f": ACL SETUSER {user} {grant}" if user else ""
        return [f"the restore needs {', '.join(refused)}, which the server refuses "
                f"({'; '.join(refused.values())}){fix}"]

    def _target_rdb_version(self, client, name, version):
        """The newest RDB version the server reads: that of a DUMP of any of its keys, else its release's."""
        for db in client.info("keyspace"):
            with self.client(int(db[2:])) as db_client:
                key = db_client.randomkey()
                payload = key is not None and db_client.dump(key)
                if payload:
                    return payload_rdb_version(payload)
        return release_rdb_version(name, version)

    def _dump_artifact(self, artifacts):
        dumps = [a for a in artifacts if a.startswith(self.dump_stem)]
        if len(dumps) != 1:
            raise ComponentError(f"{self.name}: this backup has no logical dump ({self.dump_stem}.*) to restore.")
        return dumps[0]

    def _load(self, reader, dump, url=None, into=None, only=None, match=None):
        """Replay the dump's RESTOREs in batches, each db into ``into[db]`` (default: itself); only the
        dbs in ``only`` and the keys ``match`` accepts, when given. Returns ({"db<n>": keys restored},
        {"db<n>": keys skipped because they expired since the backup})."""
        sections = reader.facts_of(self.name).get("sections")
        if sections and (url or into) and match is None:
            return self._load_sections(reader, dump, sections, url, into or {}, only)
        counts, skipped, db, batch, skipping = {}, {}, None, [], False
        with ExitStack() as stack:
            pipe = None
            try:
                with reader.open_decompressed(dump) as stream:
                    for command in read_commands(stream):
                        if command[0] == b"SELECT":
                            self._flush(pipe, batch)
                            if pipe:
                                pipe.drain()
                            db = int(command[1])
                            skipping = only is not None and db not in only
                            if skipping:
                                continue
                            pipe = Pipelined(stack.enter_context(self._bare((into or {}).get(db, db), url)))
                            counts[f"db{db}"] = skipped[f"db{db}"] = 0
                        elif command[0] == RESTORE and (skipping or (match and not match(command[1]))):
                            continue
                        elif command[0] == RESTORE and pipe is not None:
                            expiry = int(command[2])
                            if expiry and expiry <= time.time() * 1000:
                                skipped[f"db{db}"] += 1  # expired since the backup: Redis would drop it too
                                continue
                            counts[f"db{db}"] += 1
                            batch.append(pack_command(tuple(command)))
                            if len(batch) >= self.config["batch"]:
                                self._flush(pipe, batch)
                        else:
                            raise ComponentError(f"{self.name}: unexpected command {command[0][:20]!r} in {dump}.")
                    self._flush(pipe, batch)
                    if pipe:
                        pipe.drain()
            except redis.RedisError as exc:
                raise ComponentError(f"{self.name}: RESTORE failed: {exc}") from None
        return counts, skipped

    def _load_sections(self, reader, dump, sections, url, into, only):
        """``_load`` into dbs that hold nothing else (spares, a scratch server), for a dump whose
        manifest gives each db's section size: every section goes to the server as stored, in bulk,
        with no per-key work here. The server skips the keys whose expiry has passed (RESTORE ...
        ABSTTL answers OK and creates nothing), so what it holds afterwards (DBSIZE, less the spare's
        marker) is what was restored."""
        counts, skipped = {}, {}
        expected = reader.facts_of(self.name)["counts"]
        dbs = [section["db"] for section in sections]
        try:
            with reader.open_decompressed(dump) as stream:
                self._boundary(stream, dump, dbs[0])
                for db, following, section in zip(dbs, [*dbs[1:], None], sections):
                    name = f"db{db}"
                    if only is not None and db not in only:
                        for _chunk in _chunks(stream, section["bytes"]):
                            pass
                        self._boundary(stream, dump, following)
                        continue
                    target = into.get(db, db)
                    with self._bare(target, url) as conn:
                        load = BulkLoad(conn)
                        load.send(stream, section["bytes"])
                        # Checked before waiting: a wrong size leaves the server waiting for the rest of a command.
                        self._boundary(stream, dump, following)
                        load.wait(expected[name])
                    with self.client(target, url) as client:
                        counts[name] = client.dbsize() - client.exists(MARKER)
                    skipped[name] = expected[name] - counts[name]
        except (redis.RedisError, OSError) as exc:
            raise ComponentError(f"{self.name}: RESTORE failed: {exc}") from None
        return counts, skipped

    def _boundary(self, stream, dump, db):
        """The stream goes on with ``SELECT db`` (None: it ends here), as the manifest's sections say."""
        if db is None:
            found = stream.read(1) == b""
        else:
            command = pack_command(("SELECT", db))
            found = b"".join(_chunks(stream, len(command))) == command
        if not found:
            where = f"SELECT {db}" if db is not None else "its end"
            raise ComponentError(f"{self.name}: {dump} does not match its manifest (no {where} where the manifest's "
                                 "section sizes put it).")

    @staticmethod
    def _flush(pipe, batch):
        if batch:
            pipe.send(b"".join(batch), len(batch))
            batch.clear()

    def rehearse(self, reader, artifacts, log):
        """Load the dump into spare db indexes of the live server, as a restore does (without the
        switch), count and empty them; where a restore could not use spares, into a private
        redis-server on a unix socket in a temporary folder."""
        dump = self._dump_artifact(artifacts)
        with self._connected() as client:
            in_backup = sorted(int(db[2:]) for db in reader.facts_of(self.name).get("counts", {}))
            spares, reason = self._spares(client, in_backup)
        if spares is None:
            counts, skipped, loaded = self._rehearse_apart(reader, dump)
            where = f"a temporary redis-server (no spare db index on the live server: {reason})"
        else:
            try:
                counts, skipped = self._load_beside(reader, dump, spares)
                with ExitStack() as stack:
                    loaded = sum(stack.enter_context(self.client(spare)).dbsize() - 1 for spare in spares.values())
            finally:
                self._empty(spares.values())
            where = f"spare db {', '.join(map(str, spares.values()))} of the live server (emptied again)"
        log(f"{self.name}: rehearsal loaded {loaded} keys into {where}; "
            f"{sum(skipped.values())} more had expired since the backup")
        # Keys that expired since the backup were in it and would be restored if still alive.
        return {db: counts[db] + skipped[db] for db in counts}

    def _rehearse_apart(self, reader, dump):
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
        return counts, skipped, loaded

    def _wait_for(self, socket, server, folder, timeout=10):
        deadline = time.monotonic() + timeout
        while not os.path.exists(socket):
            if server.poll() is not None or time.monotonic() > deadline:
                log_path = os.path.join(folder, "redis.log")
                tail = open(log_path, errors="replace").read()[-2000:] if os.path.exists(log_path) else ""
                raise ComponentError(f"{self.name}: the rehearsal redis-server did not start: {tail or 'no output'}")
            time.sleep(0.05)
