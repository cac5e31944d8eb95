"""Private servers for tests and benchmarks, on free loopback ports: a redis-server that may be
flushed freely (never the shared one on 6379) and moto's S3 HTTP server."""

import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server(*extra_args, password=None):
    """Yields the URL of a fresh redis-server (password in the URL when given)."""
    folder = tempfile.mkdtemp(prefix="test-redis-")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", folder, *extra_args]
    if password:
        argv += ["--requirepass", password]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://{':' + password + '@' if password else ''}127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def start_moto(port=None):
    """moto's S3 HTTP server on ``port`` (a free loopback port by default): (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port or free_port(), verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{server._port}"


@contextmanager
def moto_s3_server():
    """Yields the endpoint URL of moto's S3 HTTP server on a free loopback port."""
    server, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        server.stop()
