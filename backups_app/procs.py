"""Running external programs: argument lists only (never a shell), secrets via the environment,
stdout streamed, stderr kept to a bounded tail for error messages."""

import contextlib
import fcntl
import os
import subprocess
import tempfile
import threading

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.errors import ComponentError

STDERR_TAIL = 4000


class Program:
    """``with Program([...], env={...}, stdin=PIPE/None, stdout=PIPE/None) as p``; on exit the
    exit status is checked and a failure raises ComponentError with stderr's tail."""

    def __init__(self, argv, env=None, stdin=None, stdout=None, what=None):
        self.what = what or os.path.basename(argv[0])
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                argv, stdin=stdin, stdout=stdout, stderr=self._stderr,
                env={**os.environ, **(env or {})}, close_fds=True,
            )
        except FileNotFoundError:
            self._stderr.close()
            raise ComponentError(f"{argv[0]} is not installed or not on PATH.") from None
        if self.proc.stdout:
            _widen(self.proc.stdout)

    def stderr_tail(self):
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - STDERR_TAIL))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.kill()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream:
                    try:
                        stream.close()
                    except BrokenPipeError:
                        pass
            code = self.proc.wait()
            if exc_type is None and code != 0:
                raise ComponentError(f"{self.what} failed (exit {code}): {self.stderr_tail() or 'no error output'}")
        finally:
            self._stderr.close()
        return False


def _widen(pipe):
    """Let the program's output pipe hold a whole chunk (Linux: 64 KiB by default). Each read of a
    pipe waits for the GIL again, up to 5 ms while another component's thread runs Python, so with
    small pipes a parallel backup's pg_dump waited ~16 times per MiB: at two components at once the
    PostgreSQL part took 1.8x its time alone, 1.3x now. Input pipes stay small: a program that
    reads only the head of what it is fed (``pg_restore --list``) is then fed only that. Not fatal
    where the system limits pipe sizes (fs.pipe-max-size, a user's pipe pages): the pipe just stays
    small."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux (no F_SETPIPE_SZ)
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK_SIZE)


def feed(readable, program):
    """Copy ``readable`` into the program's stdin; a program that exits early (broken pipe)
    is reported by its own exit status."""
    try:
        while chunk := readable.read(CHUNK_SIZE):
            program.proc.stdin.write(chunk)
    except BrokenPipeError:
        pass


def run(argv, env=None, what=None):
    """Run to completion and return stdout (for short outputs such as --version)."""
    with Program(argv, env=env, stdout=subprocess.PIPE, what=what) as p:
        out = p.proc.stdout.read()
    return out.decode("utf-8", "replace")


def in_thread(fn, *args):
    """Start ``fn(*args)`` in a thread; the returned join() re-raises its exception."""
    box = {}

    def target():
        try:
            fn(*args)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join():
        thread.join()
        if "error" in box:
            raise box["error"]

    return join
