"""Fault injection for the tests that kill and pause real workers at an exact line. Off unless
the environment names the point: ``BACKUP_TEST_KILL_AT=<point>`` (SIGKILL) or
``BACKUP_TEST_STOP_AT=<point>`` (SIGSTOP, resumed by the test with SIGCONT); several points are
separated by commas. Read at each use."""

import os
import signal

SIGNALS = {"BACKUP_TEST_KILL_AT": signal.SIGKILL, "BACKUP_TEST_STOP_AT": signal.SIGSTOP}


def fault_point(name):
    for variable, sig in SIGNALS.items():
        if name in os.environ.get(variable, "").split(","):
            os.kill(os.getpid(), sig)
