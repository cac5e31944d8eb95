"""Every error is JSON ``{error, detail}`` with a fitting status; ``error`` is a stable code for
programs, ``detail`` the readable text from the service (which names the fix). Bodies are JSON
only (415 otherwise), at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413), and strictly typed (422)."""

import json
import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.http import Http404
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from backups_app.errors import (
    BackupError,
    Busy,
    ConfigurationError,
    ConfirmationRequired,
    InvalidId,
    InvalidSet,
    NotCompleted,
    NotFound,
    Unavailable,
    UnknownComponent,
)
from backups_app.logs import current_request_id
from backups_app.redaction import mask

logger = logging.getLogger("backups_app")

MISCONFIGURED = (503, "misconfigured")
# Most specific first; any other BackupError is the caller's to fix (400). A configuration error
# is the operator's: 503, with the text that names the setting and the fix.
SERVICE_ERRORS = [
    (ConfigurationError, *MISCONFIGURED),
    (Unavailable, 503, "unavailable"),
    (InvalidId, 400, "invalid_id"),
    (UnknownComponent, 400, "unknown_component"),
    (NotFound, 404, "not_found"),
    (ConfirmationRequired, 409, "confirmation_required"),
    (InvalidSet, 409, "invalid_set"),
    (Busy, 409, "busy"),
    (NotCompleted, 409, "not_completed"),
    (BackupError, 400, "bad_request"),
]
HTTP_CODES = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
              405: "method_not_allowed", 415: "unsupported_media_type", 429: "throttled"}
SCHEMA = "the fields are in the API schema at /api/system/docs"


class BodyRefused(Exception):
    """Raised by JsonBody; ninja wraps every parser error in a 400 HttpError whose cause this is."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status


class JsonBody(Parser):
    """Request bodies: ``application/json`` holding valid JSON, nothing else."""

    def parse_body(self, request):
        if request.content_type != "application/json":
            raise BodyRefused(415, f"The body must be JSON: send Content-Type: application/json (this request sent "
                                   f"{request.content_type or 'none'!r}); {SCHEMA}.")
        try:
            return json.loads(request.body)
        except ValueError as exc:
            raise BodyRefused(400, f"The body is not valid JSON ({exc}); send one JSON object: {SCHEMA}.") from None
        except RecursionError:
            raise BodyRefused(400, f"The body's JSON is nested too deeply; send one JSON object: {SCHEMA}.") from None


def field_errors(errors):
    """Pydantic's errors as ``field: problem`` (``body.payload.`` left out), with the fix."""
    def where(error):
        loc = [str(p) for p in error.get("loc", ())]
        field = ".".join(loc[2:] if loc[:2] == ["body", "payload"] else loc)
        return field or "the body"

    problems = "; ".join(f"{where(e)}: {e.get('msg', 'invalid')}" for e in errors)
    return f"{problems or 'Invalid request'}. Send each field with its JSON type (true/false, [\"a\"]): {SCHEMA}."


def error_response(api, request, status, error, detail, **extra):
    return api.create_response(request, {"error": error, "detail": mask(detail), **extra}, status=status)


def install(api):
    @api.exception_handler(BackupError)
    def service_error(request, exc):
        status, code = next((s, c) for cls, s, c in SERVICE_ERRORS if isinstance(exc, cls))
        extra = {}
        if isinstance(exc, ConfirmationRequired):
            plan = exc.plan
            extra = {key: plan[key] for key in ("warning", "affected", "confirm_required", "counts", "backup_id",
                                                "components")}
            exc = f"{exc}. Send \"confirm\": true to restore."
        return error_response(api, request, status, code, str(exc), **extra)

    @api.exception_handler(ImproperlyConfigured)
    def misconfigured(request, exc):
        return error_response(api, request, *MISCONFIGURED, str(exc))

    @api.exception_handler(AuthenticationError)
    def not_authenticated(request, exc):
        response = error_response(api, request, 401, "not_authenticated",
                                  "Send Authorization: Bearer <token> (manage.py create_api_token) or log in "
                                  "to the admin.")
        response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(HttpError)
    def http_error(request, exc):
        status, detail = exc.status_code, str(exc)
        if isinstance(exc.__cause__, BodyRefused):
            status, detail = exc.__cause__.status, str(exc.__cause__)
        return error_response(api, request, status, HTTP_CODES.get(status, "error"), detail)

    @api.exception_handler(RequestDataTooBig)
    def too_large(request, exc):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(api, request, 413, "too_large", f"The body is larger than {limit} bytes "
                              "(DATA_UPLOAD_MAX_MEMORY_SIZE); send only the documented fields.")

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return error_response(api, request, 404, "not_found", str(exc) or "Not found.")

    @api.exception_handler(Exception)
    def server_error(request, exc):
        """Anything unexpected: logged with its traceback (masked) under the request id, which the
        answer carries so the log line can be found."""
        request_id = getattr(request, "request_id", None) or current_request_id()
        logger.error("Internal server error: %s %s", request.method, request.path, exc_info=exc)
        return error_response(api, request, 500, "server_error",
                              f"The server failed to handle this request ({type(exc).__name__}). Its traceback is in "
                              f"the server log under request id {request_id}.", request_id=request_id)

    @api.exception_handler(ValidationError)
    def invalid(request, exc):
        return error_response(api, request, 422, "validation_error", field_errors(exc.errors))
