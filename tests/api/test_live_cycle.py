"""The whole cycle over real HTTP against a live server process on loopback, with a django-q2
worker process (qcluster) running the enqueued backups and restores, and a file-based SQLite app
database the two share: create → poll → list → download → verify → restore without confirm (409)
→ with confirm → poll → completed → delete."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import stacks
from tests.servers import free_port
from tests.stacks import pg_connect

ROOT = Path(__file__).resolve().parents[2]
POLL_TIMEOUT = 60


def manage(env, *args):
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Live:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def json(self, method, path, body=None, expect=200):
        status, _headers, content = self.call(method, path, body)
        assert status == expect, content
        return json.loads(content)

    def poll(self, path, done=("completed", "failed", "rolled_back")):
        deadline = time.monotonic() + POLL_TIMEOUT
        while time.monotonic() < deadline:
            body = self.json("GET", path)
            if body["status"] in done:
                return body
            time.sleep(0.3)
        raise AssertionError(f"{path} still {body['status']} after {POLL_TIMEOUT}s")


def start(env, logs, name, *args):
    log = open(logs / f"{name}.log", "wb")
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test started (qcluster's workers)
        process.wait()


@pytest.fixture
def live(tmp_path, pg_database):
    stack = tmp_path / "stack"
    stack.mkdir()
    sources = stacks.pg_stack(stack, pg_database)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backupsite.settings", "VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'app.sqlite3'}", "BACKUP_DIR": str(tmp_path / "backups"),
           **stacks.environment(sources),  # POSTGRES_*, UPLOADS_DIR, SQLITE_PATHS
           "Q_WORKERS": "1", "BACKUP_HEARTBEAT_SECONDS": "1", "DJANGO_SUPERUSER_PASSWORD": "unused-in-this-test"}
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.invalid")
    token = manage(env, "create_api_token", "ops", "--name", "live cycle").strip()
    port = free_port()
    server = start(env, tmp_path, "server", "runserver", "--noreload", f"127.0.0.1:{port}")
    worker = start(env, tmp_path, "worker", "qcluster")
    client = Live(f"http://127.0.0.1:{port}/api/system", token)
    try:
        wait_until_serving(client, server, tmp_path / "server.log")
        yield client, pg_database, stack
    finally:
        stop(server)
        stop(worker)


def wait_until_serving(client, server, log):
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.call("GET", "/openapi.json")[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_full_cycle_over_http(live, tmp_path):
    client, dbname, stack = live

    accepted = client.json("POST", "/backup", {"include_uploads": True, "description": "live"}, expect=202)
    assert accepted["status"] == "pending"
    backup_id = accepted["backup_id"]
    backup = client.poll(f"/backup/{backup_id}")
    assert backup["status"] == "completed", backup["log_tail"]
    assert backup["components"] == {"postgres": True, "uploads": True, "sqlite": True}

    listing = client.json("GET", "/backups")
    assert listing["total"] == 1 and listing["backups"][0]["backup_id"] == backup_id
    assert listing["storage_used_mb"] == backup["size_mb"]

    status, headers, content = client.call("GET", f"/backup/{backup_id}/download")
    assert status == 200 and int(headers["Content-Length"]) == len(content)
    (tmp_path / "dl.tar").write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", tmp_path / "dl.tar", "-C", out], check=True)
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out / backup_id, check=True, capture_output=True)

    assert client.json("POST", f"/backup/{backup_id}/verify")["ok"] is True

    with pg_connect(dbname) as conn:
        conn.execute("DELETE FROM documents WHERE id > 10")
    (stack / "uploads" / "a.txt").unlink()

    warning = client.json("POST", "/restore", {"backup_id": backup_id}, expect=409)
    assert warning["confirm_required"] is True and warning["affected"]["postgres.documents"] == 10
    assert warning["affected"]["uploads.files"] == 1

    started = client.json("POST", "/restore", {"backup_id": backup_id, "confirm": True}, expect=202)
    restore = client.poll("/restore/status")
    assert restore["restore_id"] == started["restore_id"]
    assert restore["status"] == "completed", restore["log_tail"]
    with pg_connect(dbname) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 150
    assert (stack / "uploads" / "a.txt").read_text() == "alpha\n"

    assert client.call("DELETE", f"/backup/{backup_id}")[0] == 204
    assert client.json("GET", f"/backup/{backup_id}", expect=404)["error"] == "not_found"
    assert client.json("GET", "/backups")["total"] == 0
