"""Ids and one-at-a-time locks under real concurrency: threads of one process against a fresh
PostgreSQL catalog, run in a manage.py shell of that deployment (the test database of the rest of
the suite is SQLite, which serialises every transaction and so hides these races)."""

import json

import pytest

from tests.scale.site import Site, create_catalog, drop_catalog


@pytest.fixture(scope="module")
def pg_site(tmp_path_factory):
    name, url = create_catalog()
    deployment = Site(tmp_path_factory.mktemp("ids"), url)
    deployment.manage("migrate", "--noinput", "-v0")
    yield deployment
    drop_catalog(name)


def shell(site, code):
    """Run ``code`` in the deployment's Django; returns what it printed last, as JSON."""
    return json.loads(site.manage("shell", "-c", code).stdout.strip().splitlines()[-1])


THREADS = """
import json, threading
from django.db import connection
barrier, results, errors = threading.Barrier({n}), [], []
def call():
    barrier.wait()
    try:
        results.append(work())
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connection.close()
threads = [threading.Thread(target=call) for _ in range({n})]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({{"results": results, "errors": errors}}))
"""


def test_sixteen_backups_requested_at_once_get_distinct_ids(pg_site):
    found = shell(pg_site, "from backups_app.services.backups import create_backup\n"
                           "work = lambda: create_backup(['uploads'], trigger='api', run_async=True).backup_id\n"
                           + THREADS.format(n=16))
    assert found["errors"] == []
    ids = found["results"]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert all(i.startswith("backup_") for i in ids)
    rows = pg_site.query("SELECT count(*) FROM backups_app_backup WHERE backup_id = ANY(%s)", ids)
    assert rows == [(16,)]


def test_restore_ids_allocated_at_once_are_distinct(pg_site):
    found = shell(pg_site, "from backups_app.services.run_ids import allocate\n"
                           "work = lambda: allocate('restore')\n" + THREADS.format(n=16))
    assert found["errors"] == [] and len(set(found["results"])) == 16


def test_the_id_of_a_deleted_backup_is_never_handed_out_again(pg_site):
    found = shell(pg_site, """
import json
from unittest import mock
from django.utils import timezone
from backups_app.models import Backup
from backups_app.services.backups import create_backup, delete_backup
second = timezone.now()
with mock.patch("backups_app.archive.ids.timezone.now", return_value=second):  # all in one second
    first = create_backup(["uploads"])
    delete_backup(first.backup_id)
    gone = not Backup.objects.filter(backup_id=first.backup_id).exists()
    again = create_backup(["uploads"])
print(json.dumps([first.backup_id, gone, again.backup_id, again.status]))
""")
    first, gone, again, status = found
    assert gone and status == "completed"
    assert again == f"{first}_1"


def test_only_one_sweep_runs_at_a_time_and_the_others_skip(pg_site):
    found = shell(pg_site, """
import json, threading
from django.db import connection
from backups_app.services import locks, sweeping
inside, leave, seen = threading.Event(), threading.Event(), {}
def hold():
    with locks.exclusive("sweep") as mine:
        seen["first"] = mine
        inside.set()
        leave.wait(30)
    connection.close()
holder = threading.Thread(target=hold)
holder.start()
inside.wait(30)
seen["second"] = sweeping.sweep()  # another worker's turn while the first sweeps
leave.set()
holder.join()
seen["after"] = sweeping.sweep()
print(json.dumps(seen))
""")
    assert found == {"first": True, "second": None, "after": 0}
