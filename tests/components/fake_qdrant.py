"""A small Qdrant stand-in on a free loopback port, implementing the documented REST endpoints the
snapshot method uses, with Qdrant's JSON shapes:

    GET /                                         {"title", "version", "commit"}
    GET /collections                              {"result": {"collections": [{"name"}]}, "status": "ok"}
    POST /collections/{c}/points/count            {"result": {"count"}}
    DELETE /collections/{c}                       {"result": true}
    POST /collections/{c}/snapshots?wait=true     {"result": {"name", "creation_time", "size", "checksum"}}
    GET /collections/{c}/snapshots                {"result": [snapshot, ...]}
    GET /collections/{c}/snapshots/{name}         the file
    DELETE /collections/{c}/snapshots/{name}      {"result": true}
    POST /collections/{c}/snapshots/upload?priority=snapshot&checksum=...   multipart field "snapshot"

Errors answer {"status": {"error": "..."}, "time": ...} like Qdrant. Snapshot files are fake but
stream like real ones (a first line with the point count, then pseudo-random bytes): the server
never holds a whole file, so memory measurements see only the client. ``faults`` injects
failures per operation: an HTTP status, "timeout" (answer late) or "bad-checksum"; operations
listed in ``once`` fail one time only.
"""

import hashlib
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

BLOCK = random.Random(7).randbytes(1 << 20)


def snapshot_chunks(points, size, seed):
    head = f"FAKE-SNAPSHOT points={points} seed={seed}\n".encode()
    yield head
    left, offset = size - len(head), seed % 4096
    while left > 0:
        chunk = BLOCK[offset:offset + min(left, len(BLOCK) - offset)]
        yield chunk
        left -= len(chunk)
        offset = 0


class FakeQdrant:
    def __init__(self, version="1.12.4", api_key=None):
        self.version = version
        self.api_key = api_key
        self.collections = {}  # name -> {"points", "size", "seed", "sha256"}
        self.snapshots = {}  # (collection, name) -> snapshot description
        self.faults = {}
        self.once = set()
        self.uploads = []  # (collection, query params) of every accepted upload
        self.delay = 3
        self._counter = 0
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

    def add(self, name, points, size, seed=1):
        sha = hashlib.sha256()
        for chunk in snapshot_chunks(points, size, seed):
            sha.update(chunk)
        self.collections[name] = {"points": points, "size": size, "seed": seed, "sha256": sha.hexdigest()}

    def snapshot(self, collection, fault=None):
        self._counter += 1
        state = self.collections[collection]
        name = f"{collection}-{self._counter}-2026-11-22-01-02-03.snapshot"
        checksum = "0" * 64 if fault == "bad-checksum" else state["sha256"]
        self.snapshots[(collection, name)] = {"name": name, "creation_time": "2026-11-22T01:02:03",
                                              "size": state["size"], "checksum": checksum, "state": dict(state)}
        return {k: v for k, v in self.snapshots[(collection, name)].items() if k != "state"}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that time out close their socket mid-answer; that is the test's point


ROUTES = [
    ("GET", r"/", "version"),
    ("GET", r"/collections", "list_collections"),
    ("POST", r"/collections/(?P<c>[^/]+)/points/count", "count"),
    ("DELETE", r"/collections/(?P<c>[^/]+)", "drop"),
    ("POST", r"/collections/(?P<c>[^/]+)/snapshots/upload", "upload"),
    ("POST", r"/collections/(?P<c>[^/]+)/snapshots", "create"),
    ("GET", r"/collections/(?P<c>[^/]+)/snapshots", "list_snapshots"),
    ("GET", r"/collections/(?P<c>[^/]+)/snapshots/(?P<s>[^/]+)", "download"),
    ("DELETE", r"/collections/(?P<c>[^/]+)/snapshots/(?P<s>[^/]+)", "delete_snapshot"),
]


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

    def _json(self, status, body):
        data = json.dumps({**body, "time": 0.001}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, text):
        self._json(status, {"status": {"error": text}})

    def _ok(self, result):
        self._json(200, {"result": result, "status": "ok"})

    def _route(self, method):
        fake = self.server.fake
        url = urlparse(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        for verb, pattern, op in ROUTES:  # noqa: B007  (op is used after the break)
            match = re.fullmatch(pattern, url.path)
            if verb == method and match:
                break
        else:
            return self._error(404, f"Not found: {method} {url.path}")
        if fake.api_key and self.headers.get("api-key") != fake.api_key:
            return self._error(403, "Must provide an API key or an Authorization bearer token")
        self.fault = fault = fake.faults.get(op)
        if fault is not None and op in fake.once:
            del fake.faults[op]
        if isinstance(fault, int):
            self._drain()
            return self._error(fault, f"Service internal error: injected failure of {op}")
        if fault == "timeout" and op != "download":
            time.sleep(fake.delay)
        args = {k: unquote(v) for k, v in match.groupdict().items()}
        if "c" in args and args["c"] not in fake.collections and op not in ("upload",):
            self._drain()
            return self._error(404, f"Not found: Collection `{args['c']}` doesn't exist!")
        getattr(self, op)(fake, **args)

    def _drain(self):
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            length -= len(self.rfile.read(min(length, 1 << 20)))

    def version(self, fake):
        self._json(200, {"title": "qdrant - vector search engine", "version": fake.version, "commit": "fake"})

    def list_collections(self, fake):
        self._ok({"collections": [{"name": name} for name in fake.collections]})

    def count(self, fake, c):
        self._drain()
        self._ok({"count": fake.collections[c]["points"]})

    def drop(self, fake, c):
        del fake.collections[c]
        self._ok(True)

    def create(self, fake, c):
        self._ok(fake.snapshot(c, self.fault))

    def list_snapshots(self, fake, c):
        self._ok([{k: v for k, v in s.items() if k != "state"} for (col, _), s in fake.snapshots.items() if col == c])

    def download(self, fake, c, s):
        snapshot = fake.snapshots.get((c, s))
        if snapshot is None:
            return self._error(404, f"Not found: Snapshot {s} not found")
        state = snapshot["state"]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(state["size"]))
        self.end_headers()
        sent = 0
        for chunk in snapshot_chunks(state["points"], state["size"], state["seed"]):
            if self.fault == "timeout" and sent > state["size"] // 2:
                time.sleep(fake.delay)
                return
            self.wfile.write(chunk)
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
        sha, size, first = _read_multipart_file(self.rfile, int(self.headers["Content-Length"]),
                                                boundary.group(1).encode())
        expected = self.query.get("checksum")
        if self.fault == "bad-checksum" or (expected and expected != sha):
            return self._error(400, f"Bad request: Snapshot checksum mismatch: expected {expected}, got {sha}")
        head = re.match(rb"FAKE-SNAPSHOT points=(\d+) seed=(\d+)\n", first)
        if not head:
            return self._error(400, "Bad request: not a snapshot")
        fake.collections[c] = {"points": int(head.group(1)), "size": size, "seed": int(head.group(2)),
                               "sha256": sha}
        fake.uploads.append((c, dict(self.query)))
        self._ok(True)


def _read_multipart_file(rfile, length, boundary):
    """Stream the first part of a multipart body: (sha256, size, first 64 bytes) of its content."""
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
        raise ValueError("not a snapshot part")
    delimiter = b"\r\n--" + boundary
    sha, size, first = hashlib.sha256(), 0, b""
    while True:
        end = buf.find(delimiter)
        data, buf = (buf[:end], buf[end:]) if end >= 0 else (buf[:-len(delimiter)], buf[-len(delimiter):])
        sha.update(data)
        size += len(data)
        first = (first + data[:64])[:64] if len(first) < 64 else first
        if end >= 0:
            break
        chunk = read(1 << 20)
        if not chunk:
            raise ValueError("the closing boundary is missing")
        buf += chunk
    if (buf + read(remaining)) != delimiter + b"--\r\n":
        raise ValueError("unexpected data after the snapshot part")
    return sha.hexdigest(), size, first
