"""Which machine and which worker ran a run: recorded when the run is claimed, shown in the
admin, the API and /metrics. ``host`` is the machine's name; ``worker`` is BACKUP_WORKER_NAME
(default: the host name) and the process id, e.g. ``cluster-a pid 4242``. The name is the
project's own: django-q2's Q_CLUSTER["name"] is the queue and signing salt every worker must
share, so it cannot tell machines apart (docs/scale-out.md)."""

import os
import socket

from django.conf import settings


def host():
    return socket.gethostname()


def worker_name():
    return settings.BACKUP_WORKER_NAME or host()


def identity():
    """``{"host": ..., "worker": ...}`` for this process, as the run records it."""
    return {"host": host()[:255], "worker": f"{worker_name()} pid {os.getpid()}"[:255]}
