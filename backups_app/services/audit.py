"""The audit log: who did what, when and from where. Admin views, the API, commands and tasks
call ``record()``; nothing here may fail the action being audited."""

import getpass
import logging
import socket

from backups_app.models import AuditEvent

logger = logging.getLogger("backups_app")


def _origin(request):
    if request is not None:
        # REMOTE_ADDR is the peer; behind a reverse proxy configure it to pass the client address.
        return request.META.get("REMOTE_ADDR", "")
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "?"
    return f"{who}@{socket.gethostname()}"


def record(action, *, user=None, request=None, target="", details=None):
    """Store one event, e.g. ``record("backup.delete", request=request, target=backup_id)``.
    ``user`` defaults to the request's authenticated user."""
    if user is None and request is not None and getattr(request, "user", None) is not None:
        user = request.user if request.user.is_authenticated else None
    try:
        return AuditEvent.objects.create(
            action=action, user=user, username=user.get_username() if user else "", origin=_origin(request)[:255],
            target=str(target)[:255], details=details or {},
        )
    except Exception:  # an audit hiccup (database busy) is logged, never raised into the action
        logger.exception("could not record audit event %s %s", action, target)
        return None
