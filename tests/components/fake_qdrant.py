"""A Qdrant stand-in on a free loopback port, as strict as a real Qdrant 1.19 server on the snapshot
path (../shared/reference/qdrant/BEHAVIOUR.md; every point there is modelled, marked [B]), with
Qdrant's JSON shapes:

    GET /                                         {"title", "version", "commit"}, no key needed [B]
    GET /telemetry?details_level=N                collections.snapshots[{id, running_snapshot_recovery}] at N >= 2
    GET /collections                              {"result": {"collections": [{"name"}]}, "status": "ok"}
    GET /collections/{c}                          {"result": {"config", "payload_schema", "points_count", ...}}
    DELETE /collections/{c}                       drops the collection and its aliases, not its snapshot files [B]
    POST /collections/{c}/points/count            {"result": {"count"}}
    POST /collections/{c}/snapshots?wait=true     {"result": {"name", "creation_time", "size", "checksum"}}
    GET /collections/{c}/snapshots                made and uploaded snapshot files [B]
    GET /collections/{c}/snapshots/{name}         the file (Range supported; a missing one: plain-text 404) [B]
    DELETE /collections/{c}/snapshots/{name}      {"result": true}
    POST /collections/{c}/snapshots/upload?priority=&checksum=&wait=   multipart field "snapshot"
    GET /aliases, GET /collections/{c}/aliases    {"result": {"aliases": [{"alias_name", "collection_name"}]}}
    POST /collections/aliases                     {"actions": [...]}, applied all or nothing [B]

What the stand-in enforces like the server:
- a missing or wrong ``api-key`` gets 401 with a plain-text body; a key in ``scoped_keys`` (one
  collection's access) may back up its collection but not upload snapshots or change aliases (403) [B];
- upload: ``checksum`` must be 64 hex characters (422), must match the bytes (400); the collection
  name is validated strictly on upload only (422) [B]; into an existing collection the snapshot's
  vectors config and shard_number must be the live ones (400 "Snapshot is not compatible with
  existing collection") [B]; into a missing one the collection is created from the snapshot's config
  and payload indexes [B]; the uploaded file is kept in the collection's snapshots [B];
- recovery runs as a task that goes on when the client hangs up, counted in the telemetry; before
  1.19.0 two recoveries of one collection race and the one finishing last wins, from 1.19.0 on they
  run one after the other [B];
- snapshots carry no aliases, and ``s3_storage`` answers a null ``checksum`` [B].

Snapshot files are fake but stream like real ones (a first line with the collection's points,
config and payload indexes as JSON, then pseudo-random bytes): the server never holds a whole file,
so memory measurements see only the client. ``faults`` injects failures per operation: an HTTP
status, "timeout" (answer late; for an upload: the recovery takes ``delay`` seconds),
"bad-checksum" or (for a snapshot) "malformed-checksum"; operations listed in ``once`` fail one
time only. ``requests`` records every request (method, path, query, JSON body, content type) for
the OpenAPI check.
"""

import copy
import hashlib
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

BLOCK = random.Random(7).randbytes(1 << 20)
HEAD = re.compile(rb"FAKE-SNAPSHOT (\{.*\})\n")
STRICT_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def collection_config(vectors=None, shard_number=1, metadata=None, **params):
    """A collection's config as GET /collections/{c} answers it (Qdrant 1.19's CollectionConfig)."""
    config = {"params": {"vectors": vectors or {"size": 4, "distance": "Cosine"}, "shard_number": shard_number,
                         "replication_factor": 1, "write_consistency_factor": 1, "on_disk_payload": True, **params},
              "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                              "max_indexing_threads": 0, "on_disk": False},
              "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                   "default_segment_number": 0, "flush_interval_sec": 5},
              "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
              "quantization_config": None, "strict_mode_config": {"enabled": False}}
    if metadata is not None:
        config["metadata"] = metadata
    return config


def snapshot_chunks(state):
    """The bytes of a snapshot of ``state``: its JSON head line, then pseudo-random bytes up to
    ``state["size"]`` in all."""
    head = b"FAKE-SNAPSHOT " + json.dumps({k: state[k] for k in ("points", "seed", "config", "payload_schema")},
                                          sort_keys=True).encode() + b"\n"
    yield head
    left, offset = state["size"] - len(head), state["seed"] % 4096
    while left > 0:
        chunk = BLOCK[offset:offset + min(left, len(BLOCK) - offset)]
        yield chunk
        left -= len(chunk)
        offset = 0


def sealed(state):
    """``state`` with the size (at least its head line's) and sha256 of the snapshot file it makes."""
    sha, size = hashlib.sha256(), 0
    for chunk in snapshot_chunks(state):
        sha.update(chunk)
        size += len(chunk)
    return {**state, "size": size, "sha256": sha.hexdigest()}


class FakeQdrant:
    def __init__(self, version="1.12.4", api_key=None, scoped_keys=None, s3_storage=False):
        self.version = version
        self.api_key = api_key
        self.scoped_keys = scoped_keys or {}  # key -> the one collection it may use
        self.s3_storage = s3_storage
        self.collections = {}  # name -> {"points", "size", "seed", "sha256", "config", "payload_schema"}
        self.snapshots = {}  # (collection, file name) -> {"name", "creation_time", "size", "checksum", "state"}
        self.aliases = {}  # alias -> collection
        self.recovering = {}  # collection -> running recoveries
        self.faults = {}
        self.once = set()
        self.uploads = []  # (collection, query params) of every accepted upload
        self.requests = []  # (method, path, query, JSON body or None, content type) of every request
        self.delay = 3
        self._counter = 0
        self._lock = threading.Lock()
        self._recovery_locks = {}
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, name, points, size, seed=1, config=None, payload_schema=None):
        self.collections[name] = sealed({"points": points, "seed": seed, "size": size, "config": config or
                                         collection_config(), "payload_schema": payload_schema or {}})

    def drop(self, name):
        """DELETE /collections/{name}: its aliases go with it, its snapshot files stay."""
        del self.collections[name]
        self.aliases = {alias: c for alias, c in self.aliases.items() if c != name}

    def files(self, collection):
        """The snapshot files the server holds for ``collection`` (made or uploaded)."""
        return sorted(name for c, name in self.snapshots if c == collection)

    def snapshot(self, collection, fault=None):
        self._counter += 1
        state = self.collections[collection]
        name = f"{collection}-{self._counter}-2026-11-22-01-02-03.snapshot"
        checksum = {"bad-checksum": "0" * 64, "malformed-checksum": "sha256:" + state["sha256"][:12]}.get(
            fault, None if self.s3_storage else state["sha256"])
        self.snapshots[(collection, name)] = {"name": name, "creation_time": "2026-11-22T01:02:03",
                                              "size": state["size"], "checksum": checksum, "state": dict(state)}
        return {k: v for k, v in self.snapshots[(collection, name)].items() if k != "state"}

    def recover(self, collection, state, seconds):
        """The recovery task: not cancelled when the client goes away; counted in the telemetry."""
        with self._lock:
            self.recovering[collection] = self.recovering.get(collection, 0) + 1
            serial = self._recovery_locks.setdefault(collection, threading.Lock())
        try:
            if tuple(int(p) for p in re.findall(r"\d+", self.version)[:2]) >= (1, 19):
                with serial:
                    time.sleep(seconds)
                    self._apply(collection, state)
            else:
                time.sleep(seconds)
                self._apply(collection, state)
        finally:
            with self._lock:
                self.recovering[collection] -= 1

    def _apply(self, collection, state):
        live = self.collections.get(collection)
        if live is None:  # created from the snapshot's config, its payload indexes registered again
            self.collections[collection] = copy.deepcopy(state)
        else:  # the data is replaced; the live collection's other settings stay
            self.collections[collection] = sealed({**state, "config": live["config"],
                                                   "payload_schema": live["payload_schema"]})


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that time out close their socket mid-answer; that is the test's point


C = r"/collections/(?P<c>[^/]+)"
ROUTES = [
    ("GET", r"/", "version"),
    ("GET", r"/telemetry", "telemetry"),
    ("GET", r"/collections", "list_collections"),
    ("GET", r"/aliases", "list_aliases"),
    ("POST", r"/collections/aliases", "change_aliases"),
    ("GET", C, "info"),
    ("DELETE", C, "drop"),
    ("GET", C + r"/aliases", "collection_aliases"),
    ("POST", C + r"/points/count", "count"),
    ("POST", C + r"/snapshots/upload", "upload"),
    ("POST", C + r"/snapshots", "create"),
    ("GET", C + r"/snapshots", "list_snapshots"),
    ("GET", C + r"/snapshots/(?P<s>[^/]+)", "download"),
    ("DELETE", C + r"/snapshots/(?P<s>[^/]+)", "delete_snapshot"),
]
#: Operations a key scoped to one collection may not do: they need global manage access.
MANAGE = {"upload", "change_aliases"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")

    def _send(self, status, data, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, body):
        self._send(status, json.dumps({**body, "time": 0.001}).encode(), "application/json")

    def _text(self, status, text):
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _error(self, status, text):
        self._json(status, {"status": {"error": text}})

    def _ok(self, result):
        self._json(200, {"result": result, "status": "ok"})

    def _route(self, method):
        fake = self.server.fake
        url = urlparse(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        content_type = self.headers.get("Content-Type", "")
        self.body = None
        if content_type.startswith("application/json"):
            self.body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        fake.requests.append((method, url.path, dict(self.query), self.body, content_type))
        for verb, pattern, op in ROUTES:  # noqa: B007  (op is used after the break)
            match = re.fullmatch(pattern, url.path)
            if verb == method and match:
                break
        else:
            self._drain()
            return self._error(404, f"Not found: {method} {url.path}")
        args = {k: unquote(v) for k, v in match.groupdict().items()}
        key = self.headers.get("api-key")
        if op != "version" and fake.api_key and key != fake.api_key:
            scope = fake.scoped_keys.get(key)
            if scope is None:
                self._drain()
                return self._text(401, "Must provide an API key or an Authorization bearer token")
            if op in MANAGE or args.get("c", scope) != scope:
                self._drain()
                return self._error(403, f"Forbidden: Global manage access is required for {op}")
        self.fault = fault = fake.faults.get(op)
        if fault is not None and op in fake.once:
            del fake.faults[op]
        if isinstance(fault, int):
            self._drain()
            return self._error(fault, f"Service internal error: injected failure of {op}")
        if fault == "timeout" and op not in ("download", "upload"):
            time.sleep(fake.delay)
        if "c" in args and args["c"] not in fake.collections and op != "upload":
            self._drain()
            return self._error(404, f"Not found: Collection `{args['c']}` doesn't exist!")
        getattr(self, op)(fake, **args)

    def _drain(self):
        length = int(self.headers.get("Content-Length") or 0) if self.body is None else 0
        while length > 0:
            length -= len(self.rfile.read(min(length, 1 << 20)))

    def version(self, fake):
        self._json(200, {"title": "qdrant - vector search engine", "version": fake.version, "commit": "fake"})

    def telemetry(self, fake):
        level = int(self.query.get("details_level", 0))
        collections = {"number_of_collections": len(fake.collections)}
        if level >= 1:
            collections["collections"] = []
            collections["snapshots"] = [] if level < 2 else [
                {"id": c, "running_snapshots": 0, "running_snapshot_recovery": n, "total_snapshot_creations": 0}
                for c, n in fake.recovering.items()]
        self._ok({"id": "fake", "collections": collections})

    def list_collections(self, fake):
        self._ok({"collections": [{"name": name} for name in fake.collections]})

    def _aliases(self, fake, collection=None):
        return {"aliases": [{"alias_name": alias, "collection_name": c} for alias, c in fake.aliases.items()
                            if collection in (None, c)]}

    def list_aliases(self, fake):
        self._ok(self._aliases(fake))

    def collection_aliases(self, fake, c):
        self._ok(self._aliases(fake, c))

    def change_aliases(self, fake):
        aliases = dict(fake.aliases)  # all or nothing
        for action in (self.body or {}).get("actions", []):
            (kind, spec), = action.items()
            if kind == "create_alias":
                if spec["collection_name"] not in fake.collections:
                    return self._error(404, f"Not found: Collection `{spec['collection_name']}` doesn't exist!")
                if spec["alias_name"] in fake.collections:
                    return self._error(400, f"Bad request: Collection `{spec['alias_name']}` already exists!")
                aliases[spec["alias_name"]] = spec["collection_name"]
            elif kind == "delete_alias":
                if aliases.pop(spec["alias_name"], None) is None:
                    return self._error(404, f"Not found: Alias {spec['alias_name']} does not exists!")
            else:
                return self._error(400, f"Bad request: unknown alias operation {kind}")
        fake.aliases = aliases
        self._ok(True)

    def info(self, fake, c):
        state = fake.collections[c]
        self._ok({"status": "green", "optimizer_status": "ok", "segments_count": 1, "points_count": state["points"],
                  "indexed_vectors_count": 0, "config": state["config"],
                  "payload_schema": {f: {**index, "points": state["points"]}
                                     for f, index in state["payload_schema"].items()}})

    def count(self, fake, c):
        self._ok({"count": fake.collections[c]["points"]})

    def drop(self, fake, c):
        fake.drop(c)
        self._ok(True)

    def create(self, fake, c):
        self._ok(fake.snapshot(c, self.fault))

    def list_snapshots(self, fake, c):
        self._ok([{k: v for k, v in s.items() if k != "state"} for (col, _), s in fake.snapshots.items() if col == c])

    def download(self, fake, c, s):
        snapshot = fake.snapshots.get((c, s))
        if snapshot is None:
            return self._text(404, f"Snapshot {s} not found")
        state, size = snapshot["state"], snapshot["size"]
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if ranged:
            start = int(ranged.group(1))
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        sent = 0
        for chunk in snapshot_chunks(state):
            if self.fault == "timeout" and sent > size // 2:
                time.sleep(fake.delay)
                return
            skip = max(0, min(len(chunk), start - sent))
            self.wfile.write(chunk[skip:])
            sent += len(chunk)

    def delete_snapshot(self, fake, c, s):
        if fake.snapshots.pop((c, s), None) is None:
            return self._error(404, f"Not found: Snapshot {s} not found")
        self._ok(True)

    def upload(self, fake, c):
        boundary = re.search(r"boundary=([^;]+)", self.headers.get("Content-Type", ""))
        if not boundary or self.headers.get("Content-Length") is None:
            self._drain()
            return self._error(400, "Bad request: expected a multipart body with a Content-Length")
        try:  # the body is read whole into a temporary file before anything is checked
            sha, size, first, filename = _read_multipart_file(
                self.rfile, int(self.headers["Content-Length"]), boundary.group(1).encode())
        except ValueError as exc:
            return self._error(400, f"Bad request: {exc}")
        if STRICT_NAME.search(c):
            return self._error(422, f'Validation error in path parameters: [name: collection name cannot contain '
                                    f'"{STRICT_NAME.search(c).group()}" char]')
        expected = self.query.get("checksum")
        if expected is not None and not SHA256_HEX.fullmatch(expected):
            return self._error(422, f"Validation error in query parameters: [checksum: {expected!r} is not a "
                                    "valid SHA256 hash]")
        if self.fault == "bad-checksum" or (expected and expected.lower() != sha):
            return self._error(400, f"Bad request: Snapshot checksum mismatch: expected {expected}, got {sha}")
        fake.snapshots[(c, filename)] = {"name": filename, "creation_time": "2026-11-22T01:02:04", "size": size,
                                         "checksum": sha, "state": None}
        head = HEAD.match(first)
        if not head:
            return self._error(400, "Bad request: not a snapshot")
        state = {**json.loads(head.group(1)), "size": size, "sha256": sha}
        fake.snapshots[(c, filename)]["state"] = state
        live = fake.collections.get(c)
        for key in ("vectors", "shard_number"):
            if live is not None and live["config"]["params"].get(key) != state["config"]["params"].get(key):
                return self._error(400, f"Bad request: Snapshot is not compatible with existing collection: "
                                        f"Collection {key}: {live['config']['params'].get(key)} Snapshot "
                                        f"{key}: {state['config']['params'].get(key)}")
        task = threading.Thread(target=fake.recover, args=(c, state, fake.delay if self.fault == "timeout" else 0),
                                daemon=True)
        task.start()
        task.join()
        fake.uploads.append((c, dict(self.query)))
        self._ok(True)


def _read_multipart_file(rfile, length, boundary):
    """Stream the first part of a multipart body: (sha256, size, first line, file name) of its
    content; the first line is read whole (it holds the fake snapshot's JSON head)."""
    remaining = length

    def read(n):
        nonlocal remaining
        data = rfile.read(min(n, remaining))
        remaining -= len(data)
        return data

    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = read(4096)
        if not chunk:
            raise ValueError("multipart headers never end")
        buf += chunk
    headers, buf = buf.split(b"\r\n\r\n", 1)
    if not headers.startswith(b"--" + boundary) or b'name="snapshot"' not in headers:
        raise ValueError("no multipart field 'snapshot'")
    named = re.search(rb'filename="([^"]*)"', headers)
    filename = named.group(1).decode().rsplit("/", 1)[-1] if named else f"upload-{random.getrandbits(64):x}"
    delimiter = b"\r\n--" + boundary
    sha, size, first = hashlib.sha256(), 0, b""
    while True:
        end = buf.find(delimiter)
        data, buf = (buf[:end], buf[end:]) if end >= 0 else (buf[:-len(delimiter)], buf[-len(delimiter):])
        sha.update(data)
        size += len(data)
        if b"\n" not in first and len(first) < 1 << 16:
            first += data[:1 << 16]
        if end >= 0:
            break
        chunk = read(1 << 20)
        if not chunk:
            raise ValueError("the closing boundary is missing")
        buf += chunk
    if (buf + read(remaining)) != delimiter + b"--\r\n":
        raise ValueError("unexpected data after the snapshot part")
    return sha.hexdigest(), size, first, filename
