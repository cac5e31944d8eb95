"""Settings for the qcluster started by tests/services/test_schedules.py: the project's settings,
with the guard cycle at 30 s so the scheduler runs on the cluster's first guard pass instead of
after 30 s of half-second cycles."""

from backupsite.settings import *  # noqa: F401,F403
from backupsite.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "guard_cycle": 30, "workers": 1}
