"""Every error is JSON ``{error, detail}`` with a fitting status; ``error`` is a stable code for
programs, ``detail`` the readable text from the service (which names the fix)."""

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from ninja.errors import AuthenticationError, HttpError, ValidationError

from backups_app.errors import (
    BackupError,
    Busy,
    ConfigurationError,
    ConfirmationRequired,
    InvalidId,
    NotCompleted,
    NotFound,
    Unavailable,
    UnknownComponent,
)
from backups_app.redaction import mask

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
    (Busy, 409, "busy"),
    (NotCompleted, 409, "not_completed"),
    (BackupError, 400, "bad_request"),
]
HTTP_CODES = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
              405: "method_not_allowed", 429: "throttled"}


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
        return error_response(api, request, exc.status_code, HTTP_CODES.get(exc.status_code, "error"), str(exc))

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return error_response(api, request, 404, "not_found", str(exc) or "Not found.")

    @api.exception_handler(ValidationError)
    def invalid(request, exc):
        detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors)
        return error_response(api, request, 422, "validation_error", detail or "Invalid request.")
