"""Fault injection for the tests that kill and pause real workers at an exact line. Off unless
the environment names the point: ``BACKUP_TEST_KILL_AT=<point>`` (SIGKILL) or
``BACKUP_TEST_STOP_AT=<point>`` (SIGSTOP, resumed by the test with SIGCONT); several points are
separated by commas, and ``<point>#N`` acts the N-th time this process reaches the point
(``read.postgres.dump.half#2``: the restore's load, after the plan's checksum pass read it once).
Read at each use."""

import os
import signal
from collections import Counter

SIGNALS = {"BACKUP_TEST_KILL_AT": signal.SIGKILL, "BACKUP_TEST_STOP_AT": signal.SIGSTOP}
_reached = Counter()


def _wanted(points, name):
    """Whether ``points`` (comma-separated ``<point>`` or ``<point>#N``) want ``name`` now."""
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


def halfway(name, before, after, size):
    """The fault point ``read.<name>.half``, reached when a stream of ``size`` bytes has just read
    past its middle (from ``before`` to ``after`` bytes): a kill there is a kill mid-load."""
    if before * 2 < size <= after * 2:
        fault_point(f"read.{name}.half")
