"""Fault injection for the tests that kill, pause or break things at an exact line. Off unless
the environment names the point: ``BACKUP_TEST_KILL_AT=<point>`` (SIGKILL) or
``BACKUP_TEST_STOP_AT=<point>`` (SIGSTOP, resumed by the test with SIGCONT); several points are
separated by commas, and ``<point>#N`` acts the N-th time this process reaches the point
(``read.postgres.dump.half#2``: the restore's load, after the plan's checksum pass read it once).
``BACKUP_TEST_SLOW_AT=<point>`` sleeps ``BACKUP_TEST_SLOW_SECONDS`` (0.2) every time instead: a
backup or a restore made to last (``write.uploads.tar.zst.mib``: per MiB written,
``read.uploads.tar.zst.mib``: per MiB read), for the live progress tests.
Tests in the same process use ``acting_at`` instead (kill a server in the middle of a dump).
Read at each use."""

import os
import signal
import time
from collections import Counter
from contextlib import contextmanager

SIGNALS = {"BACKUP_TEST_KILL_AT": signal.SIGKILL, "BACKUP_TEST_STOP_AT": signal.SIGSTOP}
SLOW = "BACKUP_TEST_SLOW_AT"
MIB = 1024 * 1024
_reached = Counter()
_actions = {}  # {point: action()} of ``acting_at``


def _wanted(points, name):
    """Whether ``points`` (comma-separated ``<point>`` / ``<point>#N``) want ``name`` now."""
    for point in points.split(","):
        point, _, nth = point.partition("#")
        if point == name and _reached[name] == int(nth or 1):
            return True
    return False


def fault_point(name):
    _reached[name] += 1
    for variable, sig in SIGNALS.items():
        if _wanted(os.environ.get(variable, ""), name):
            os.kill(os.getpid(), sig)
    if name in os.environ.get(SLOW, "").split(","):
        time.sleep(float(os.environ.get("BACKUP_TEST_SLOW_SECONDS", "0.2")))
    for point, action in list(_actions.items()):
        if _wanted(point, name):
            action()


@contextmanager
def acting_at(point, action):
    """Call ``action()`` when this process reaches ``point`` (``<point>#N`` as above), counting
    from now."""
    _reached.clear()
    _actions[point] = action
    try:
        yield
    finally:
        del _actions[point]


def armed():
    return bool(_actions) or any(os.environ.get(variable) for variable in (*SIGNALS, SLOW))


def reading(name, before, after, size):
    """The fault points of a stream of ``size`` bytes that has just read from ``before`` to
    ``after`` bytes: ``read.<name>.half`` when it passed its middle (a kill there is a kill
    mid-load), and ``read.<name>.mib`` for each MiB it passed (a restore made to last)."""
    if before * 2 < size <= after * 2:
        fault_point(f"read.{name}.half")
    for _ in range(before // MIB, after // MIB):
        fault_point(f"read.{name}.mib")


class Written:
    """A writable stream that reaches the fault point ``write.<name>.mib`` each time another MiB
    has gone through it: in the middle of a dump. Only used while a point is set (``armed``)."""

    def __init__(self, stream, name):
        self._stream, self._name, self.size = stream, name, 0

    def write(self, data):
        written = self._stream.write(data)
        before, self.size = self.size, self.size + len(data)
        for _ in range(before // MIB, self.size // MIB):
            fault_point(f"write.{self._name}.mib")
        return written

    def __getattr__(self, name):
        return getattr(self._stream, name)
