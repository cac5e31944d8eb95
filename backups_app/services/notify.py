"""Notifications when a run finishes: always on failure, on success when BACKUP_NOTIFY_ON_SUCCESS.

Channels: email through Django's mail backend to BACKUP_NOTIFY_EMAIL, and a JSON webhook to
BACKUP_NOTIFY_WEBHOOK with a Slack-compatible ``{"text": ...}`` body (Slack, Mattermost, Discord's
/slack endpoint, Teams workflows). Delivery runs in a separate thread after the run is recorded,
each channel retried with backoff; a channel that still fails is logged on the run. The webhook
URL is a secret and never appears in logs or errors.
"""

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.db import OperationalError, connection
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from backups_app.models import Backup, Restore, RunStatus, Verification
from backups_app.parsing import comma_list
from backups_app.redaction import mask

logger = logging.getLogger("backups_app")

BAD = (RunStatus.FAILED, RunStatus.ROLLED_BACK)


def describe(run):
    """(subject, text) for a finished run."""
    if isinstance(run, Backup):
        what = f"Backup {run.backup_id} ({', '.join(run.components)})"
    elif isinstance(run, Restore):
        what = f"Restore {run.restore_id} from {run.source_backup_id} ({', '.join(run.components)})"
    else:
        what = f"{'Restore rehearsal' if run.kind == Verification.Kind.DEEP else 'Verification'} of " \
               f"{run.source_backup_id}"
    outcome = {RunStatus.COMPLETED: "succeeded", RunStatus.FAILED: "FAILED",
               RunStatus.ROLLED_BACK: "FAILED and was rolled back"}.get(run.status, run.status)
    subject = f"[backups@{socket.gethostname()}] {what} {outcome}"
    lines = [subject]
    if run.duration is not None:
        lines.append(f"Duration: {run.duration.total_seconds():.0f} s")
    if run.error:
        lines.append(f"Error: {run.error}")
    return subject, "\n".join(lines)


def wanted(run):
    if isinstance(run, Backup) and run.kind != Backup.Kind.REGULAR:
        return False  # a safety backup is reported through its restore
    return run.status in BAD or (run.status == RunStatus.COMPLETED and settings.BACKUP_NOTIFY_ON_SUCCESS)


def notify_run(run):
    """Start delivering the notification for ``run`` if one is due; returns the thread or None.
    The thread is not a daemon, so a command's process waits for delivery before exiting."""
    channels = _channels()
    if not channels or not wanted(run):
        return None
    subject, text = describe(run)
    thread = threading.Thread(target=_deliver, args=(type(run), run.pk, channels, subject, text),
                              name=f"notify-{run}")
    thread.start()
    return thread


def _channels():
    channels = []
    recipients = comma_list(settings.BACKUP_NOTIFY_EMAIL)
    if recipients:
        channels.append(("email", lambda subject, text: _send_email(recipients, subject, text)))
    if settings.BACKUP_NOTIFY_WEBHOOK:
        url = settings.BACKUP_NOTIFY_WEBHOOK
        channels.append(("webhook", lambda subject, text: _post_webhook(url, text)))
    return channels


def _send_email(recipients, subject, text):
    conn = get_connection(timeout=settings.BACKUP_NOTIFY_TIMEOUT)
    send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, recipients, connection=conn)


def _post_webhook(url, text):
    try:
        request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=settings.BACKUP_NOTIFY_TIMEOUT) as response:
            response.read()
    except (ValueError, http.client.InvalidURL):  # their text quotes the URL
        raise OSError("the webhook URL is invalid (check BACKUP_NOTIFY_WEBHOOK)") from None
    except urllib.error.HTTPError as exc:
        raise OSError(f"the webhook answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:  # its text never includes the URL
        raise OSError(f"the webhook is unreachable: {exc.reason}") from None


def _append_log(model, pk, line, attempts=10):
    """Add a line to the run's log from this side thread; a database briefly locked by the run's
    own process (SQLite) is waited out instead of losing the line."""
    for attempt in range(attempts):
        try:
            model.objects.filter(pk=pk).update(log=Concat(F("log"), Value(line)))
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _deliver(model, pk, channels, subject, text):
    failures = []
    try:
        for name, send in channels:
            error = None
            for attempt in range(settings.BACKUP_NOTIFY_ATTEMPTS):
                if attempt:
                    time.sleep(2 ** (attempt - 1))
                try:
                    send(subject, text)
                    error = None
                    break
                except Exception as exc:
                    error = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            if error:
                failures.append(f"{name} notification failed after {settings.BACKUP_NOTIFY_ATTEMPTS} "
                                f"attempt(s): {error}")
        for failure in failures:
            logger.warning("%s %s: %s", model.__name__, pk, failure)
            line = f"{timezone.now():%Y-%m-%d %H:%M:%S} {mask(failure)}\n"
            _append_log(model, pk, line)
    except Exception:  # the run is recorded already; a busy database must not leave a traceback behind
        logger.exception("could not record the notification outcome of %s %s", model.__name__, pk)
    finally:
        connection.close()  # this thread's own database connection
