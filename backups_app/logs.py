"""Logging for the web and the worker (configured in settings.LOGGING): every line carries the
request id of the web request it belongs to ("-" outside one) and is masked, traceback included,
so no configured secret reaches a log (redaction.mask).

``RequestIdMiddleware`` gives each request an id: the client's ``X-Request-ID`` when it is a
plain token, else a new one. It is sent back in ``X-Request-ID``, is on every log line of the
request, and an API 500 answers with it (api/errors.py), so a user's report finds the traceback."""

import contextvars
import logging
import re
import threading
import uuid

REQUEST_ID = contextvars.ContextVar("request_id", default="-")
CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
HEADER = "X-Request-ID"


def current_request_id():
    return REQUEST_ID.get()


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(HEADER, "")
        request.request_id = given if CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response[HEADER] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        return True


class MaskingFormatter(logging.Formatter):
    """The formatted line (message and traceback) with configured secrets replaced by ***."""

    _busy = threading.local()

    def format(self, record):
        text = super().format(record)
        if getattr(self._busy, "on", False):  # mask() itself logged: do not recurse
            return text
        self._busy.on = True
        try:
            from backups_app.redaction import mask

            return mask(text)
        except Exception:  # settings or apps not ready yet: nothing configured to mask
            return text
        finally:
            self._busy.on = False
