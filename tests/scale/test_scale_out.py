"""Scale-out as an operator runs it: the catalog on PostgreSQL (a fresh database), a private
redis-server as the django-q2 broker, one live web server and qcluster processes named like two
machines (BACKUP_WORKER_NAME cluster-a / cluster-b), all over real HTTP. Twelve backups asked at
once are accepted with distinct ids and each completed once, spread over both clusters; a restore
and a backup asked together never both run; a cluster killed with -9 while holding tasks loses
nothing for good: its runs end (completed on the other cluster, or failed with the reason)
within the configured bound."""

import json
import re
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import redis

from tests.api.test_live_cycle import Live, wait_until_serving
from tests.scale.site import STALE, Site
from tests.servers import free_port, redis_server

SWEEP, REQUEUE = 2, 8  # BACKUP_SWEEP_SECONDS, BACKUP_REQUEUE_SECONDS for these processes
QUEUE = "django_q:backups:q"  # the Redis list of Q_CLUSTER["name"] = "backups"
ENDED = ("completed", "failed", "rolled_back")


@pytest.fixture
def live(site):
    with redis_server() as broker:
        site.env.update(Q_REDIS_URL=broker, BACKUP_SWEEP_SECONDS=str(SWEEP), BACKUP_REQUEUE_SECONDS=str(REQUEUE),
                        BACKUP_PENDING_SECONDS="180", Q_TIMEOUT="60", Q_RETRY="70", Q_WORKERS="1")
        site.manage("createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.invalid")
        token = site.manage("create_api_token", "ops", "--name", "scale-out").stdout.strip()
        port = free_port()
        server = site.start("server", "runserver", "--noreload", f"127.0.0.1:{port}")
        api = Live(f"http://127.0.0.1:{port}/api/system", token)
        wait_until_serving(api, server, site.root / "server.log")
        site.broker, site.metrics_url = redis.Redis.from_url(broker), f"http://127.0.0.1:{port}/metrics"
        yield site, api
        site.stop_all()


def cluster(site, name, **env):
    process = site.cluster(name, **env)
    site.wait_for(lambda: " running." in site.log(name), f"{name} running", 60)
    return process


def at_once(*calls):
    """Run the calls in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def released(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(released, calls))


def request_backup(api):
    return lambda: api.call("POST", "/backup", {"components": ["uploads"], "description": "scale-out"})


def machine(worker):
    return worker.split(" pid ")[0]


def test_twelve_backups_at_once_get_distinct_ids_and_run_once_each_over_both_clusters(live):
    site, api = live
    cluster(site, "cluster-a")
    cluster(site, "cluster-b")

    answers = at_once(*[request_backup(api)] * 12)
    assert [status for status, _, _ in answers] == [202] * 12, [body for _, _, body in answers]
    ids = [json.loads(body)["backup_id"] for _, _, body in answers]
    assert len(set(ids)) == 12

    site.wait_for(lambda: all(run[0] in ENDED for run in site.runs().values()), "every backup finished")
    runs = site.runs()
    assert sorted(runs) == sorted(ids)
    for status, error, _worker, log in runs.values():
        assert status == "completed", error
        assert log.count("finished: completed") == 1 and log.count("backing up uploads") == 1, log
    spread = {name: [i for i, run in runs.items() if machine(run[2]) == name] for name in ("cluster-a", "cluster-b")}
    assert all(spread.values()), spread  # both machines took some
    assert sum(map(len, spread.values())) == 12
    print("spread over clusters:", {name: len(ran) for name, ran in spread.items()})

    detail = api.json("GET", f"/backup/{ids[0]}")
    assert detail["host"] == socket.gethostname() and re.fullmatch(r"cluster-[ab] pid \d+", detail["worker"])
    with urllib.request.urlopen(site.metrics_url, timeout=30) as response:
        metrics = response.read().decode()
    assert f'backup_host_last_finished_timestamp_seconds{{host="{socket.gethostname()}",kind="backup"}}' in metrics


def test_a_restore_and_a_backup_asked_together_never_both_run(live):
    site, api = live
    source = site.manage("backup").stdout.strip()
    # Whichever wins stays in progress until released, so the other one meets it running (and is
    # not taken for dead meanwhile: a long stale limit for these workers' sweeps).
    paused_at = {"BACKUP_TEST_STOP_AT": "backup.before_manifest,restore.applied", "Q_WORKERS": "2",
                 "BACKUP_STALE_SECONDS": "300"}
    outcomes = []
    for _round in range(3):
        # Fresh clusters each round: a process pauses at a point the first time it reaches it only.
        clusters = [cluster(site, "cluster-a", **paused_at), cluster(site, "cluster-b", **paused_at)]
        (b_status, _, b_body), (r_status, _, r_body) = at_once(request_backup(api), lambda: api.call(
            "POST", "/restore", {"backup_id": source, "confirm": True, "components": ["config"]}))
        if r_status == 202:
            restore_id = json.loads(r_body)["restore_id"]
            site.wait_for(lambda group=clusters: any(map(Site.stopped_pids, group)), "the restore paused")
            if b_status == 202:  # queued, and refused by the worker that claimed it
                backup_id = json.loads(b_body)["backup_id"]
                site.wait_for(lambda i=backup_id: site.runs()[i][0] == "failed", "the backup refused")
                assert site.runs()[backup_id][1].startswith(f"Backup refused: {restore_id} is running")
            else:
                assert b_status == 409 and f"Backup refused: {restore_id}" in json.loads(b_body)["detail"]
            outcomes.append("restore ran")
        else:
            assert r_status == 409 and b_status == 202, (r_body, b_body)
            backup_id = json.loads(b_body)["backup_id"]
            assert f"Restore refused: backup {backup_id} is running" in json.loads(r_body)["detail"]
            site.wait_for(lambda group=clusters: any(map(Site.stopped_pids, group)), "the backup paused")
            outcomes.append("backup ran")
        for process in clusters:
            site.resume(process)
        site.wait_for(lambda: not any(run[0] in ("pending", "in_progress") for table in ("backup", "restore")
                                      for run in site.runs(table).values()), "the round finished")
        Site.stop(*clusters)
    restores = site.runs("restore")
    backups = {i: run for i, run in site.runs().items() if i != source}
    ran = [i for i, run in [*restores.items(), *backups.items()] if run[0] == "completed"]
    assert len(ran) == 3, (restores, backups)  # one per round, never both
    assert site.query("SELECT name FROM backups_app_operationlock") == []
    print("who ran in each round:", outcomes)


def test_a_cluster_killed_while_holding_tasks_loses_none_of_its_runs(live):
    site, api = live
    doomed = cluster(site, "cluster-a", BACKUP_TEST_STOP_AT="backup.before_manifest", Q_WORKERS="2")
    answers = at_once(*[request_backup(api)] * 6)
    ids = [json.loads(body)["backup_id"] for _, _, body in answers]
    # cluster-a's two workers are mid-backup (paused) and its pusher holds the other four tasks.
    site.wait_for(lambda: len(Site.stopped_pids(doomed)) == 2 and site.broker.llen(QUEUE) == 0, "cluster-a busy")
    held = site.runs()
    running = [i for i in ids if held[i][0] == "in_progress"]
    assert len(running) == 2 and all(held[i][0] == "pending" for i in ids if i not in running)
    cluster(site, "cluster-b")

    Site.kill(doomed)
    killed_at = time.monotonic()
    bound = max(STALE, REQUEUE) + 2 * SWEEP + 30  # + the time the survivor needs for four backups
    site.wait_for(lambda: all(site.runs()[i][0] in ENDED for i in ids), "every run ended", bound)
    took = time.monotonic() - killed_at

    runs = site.runs()
    for backup_id in running:  # lost with the machine mid-run: failed with the reason, files removed
        status, error, worker, _ = runs[backup_id]
        assert status == "failed" and error.startswith("The worker running this stopped responding"), error
        assert machine(worker) == "cluster-a" and not (site.storage / backup_id).exists()
    for backup_id in set(ids) - set(running):  # lost in the dead pusher's hands: queued again, run on cluster-b
        status, error, worker, log = runs[backup_id]
        assert status == "completed" and machine(worker) == "cluster-b", (error, log)
    assert "queued again (not started within BACKUP_REQUEUE_SECONDS" in site.log("cluster-b")
    finished = [datetime.fromisoformat(str(t)).astimezone(timezone.utc) for (t,) in
                site.query("SELECT finished_at FROM backups_app_backup WHERE backup_id = ANY(%s)", ids)]
    print(f"every run of the killed cluster ended {took:.1f} s after the kill (bound {bound} s); "
          f"spread of finishing: {(max(finished) - min(finished)).total_seconds():.1f} s")
