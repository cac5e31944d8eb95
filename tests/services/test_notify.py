"""Notifications: a webhook received by a loopback HTTP server, email in Django's outbox,
retries, failures logged on the run, and a slow receiver never holding the run up."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from backups_app.models import Backup, RunStatus
from backups_app.services import backups, notify
from tests.stacks import ENGINES

pytestmark = pytest.mark.django_db(transaction=True)  # delivery threads use their own connections


class Receiver:
    """A loopback webhook endpoint that records JSON bodies and answers ``status``."""

    def __init__(self, status=200):
        self.bodies, self.status, self.release = [], status, threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.release.wait(30)
                receiver.bodies.append((self.headers["Content-Type"], json.loads(body)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/SECRETTOKEN"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    made = []

    def make(status=200):
        made.append(Receiver(status))
        settings.BACKUP_NOTIFY_WEBHOOK = made[-1].url
        return made[-1]

    yield make
    for r in made:
        r.close()


def wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def failing_source(sources, tmp_path):
    sources(uploads=(ENGINES["uploads"], {"path": str(tmp_path / "no-such-folder")}))


def test_failure_reaches_the_webhook_and_email(failing_source, receiver, settings):
    hook = receiver()
    settings.BACKUP_NOTIFY_EMAIL = "ops@example.com, dba@example.com"
    backup = backups.create_backup()
    assert backup.status == RunStatus.FAILED
    assert wait_for(lambda: hook.bodies and len(mail.outbox) == 1)
    content_type, body = hook.bodies[0]
    assert content_type == "application/json"
    assert f"Backup {backup.backup_id} (uploads) FAILED" in body["text"]
    assert "does not exist (check UPLOADS_DIR)" in body["text"]
    message = mail.outbox[0]
    assert message.to == ["ops@example.com", "dba@example.com"]
    assert f"Backup {backup.backup_id} (uploads) FAILED" in message.subject
    assert "check UPLOADS_DIR" in message.body


def test_success_is_sent_only_when_asked(demo_stack, receiver, settings):
    hook = receiver()
    first = backups.create_backup()
    settings.BACKUP_NOTIFY_ON_SUCCESS = True
    second = backups.create_backup()
    assert wait_for(lambda: hook.bodies)
    time.sleep(0.3)
    assert len(hook.bodies) == 1
    assert f"Backup {second.backup_id} (uploads, sqlite) succeeded\nDuration: " in hook.bodies[0][1]["text"]
    assert first.status == RunStatus.COMPLETED


def test_notify_failures_are_retried_and_logged_on_the_run(failing_source, receiver, settings):
    hook = receiver(status=500)
    settings.BACKUP_NOTIFY_ATTEMPTS = 2
    backup = backups.create_backup()
    expected = "webhook notification failed after 2 attempt(s): the webhook answered HTTP 500"
    assert wait_for(lambda: expected in Backup.objects.get(pk=backup.pk).log)
    assert len(hook.bodies) == 2
    stored = Backup.objects.get(pk=backup.pk)
    assert stored.status == RunStatus.FAILED and "SECRETTOKEN" not in stored.log


def test_unreachable_webhook_is_logged_without_its_url(failing_source, settings):
    settings.BACKUP_NOTIFY_WEBHOOK = "http://127.0.0.1:9/hooks/SECRETTOKEN"  # discard port: refused
    settings.BACKUP_NOTIFY_ATTEMPTS = 1
    backup = backups.create_backup()
    assert wait_for(lambda: "webhook notification failed" in Backup.objects.get(pk=backup.pk).log)
    log = Backup.objects.get(pk=backup.pk).log
    assert "the webhook is unreachable" in log and "SECRETTOKEN" not in log


@pytest.mark.parametrize("url", ["hooks.slack.com/services/T000/B000/SECRETTOKEN",  # no scheme: ValueError
                                 "https://hooks.slack.com/services/T000/B000/SECRET TOKEN"])  # InvalidURL
def test_malformed_webhook_url_is_logged_without_it(failing_source, settings, url):
    settings.BACKUP_NOTIFY_WEBHOOK = url
    settings.BACKUP_NOTIFY_ATTEMPTS = 1
    backup = backups.create_backup()
    assert wait_for(lambda: "webhook notification failed" in Backup.objects.get(pk=backup.pk).log)
    log = Backup.objects.get(pk=backup.pk).log
    assert "webhook notification failed after 1 attempt(s): the webhook URL is invalid" in log
    assert "SECRET" not in log and "hooks.slack.com" not in log


def test_a_slow_receiver_never_holds_the_run(failing_source, receiver):
    hook = receiver()
    hook.release.clear()  # the endpoint hangs until released
    started = time.monotonic()
    backup = backups.create_backup()
    assert time.monotonic() - started < 5
    assert Backup.objects.get(pk=backup.pk).status == RunStatus.FAILED and not hook.bodies
    hook.release.set()
    assert wait_for(lambda: hook.bodies)


def test_safety_backups_are_not_notified_on_their_own(demo_stack, settings):
    settings.BACKUP_NOTIFY_EMAIL = "ops@example.com"
    settings.BACKUP_NOTIFY_ON_SUCCESS = True
    safety = backups.create_backup(kind=Backup.Kind.SAFETY)
    assert notify.notify_run(safety) is None
    assert mail.outbox == []
