"""Monitoring: ``GET /api/system/health`` (in the API and its schema: 200 healthy, 503 not) and
``GET /metrics`` (Prometheus text, at the root where scrapers look). Both answer clients from
BACKUP_METRICS_ALLOW addresses (loopback by default), logged-in staff, and whatever
BACKUP_MONITORING_AUTHENTICATORS accepts (dotted paths to ``callable(request) -> bool``; API
tokens plug in there). Refusals have the API's ``{error, detail}`` shape."""

import ipaddress
from typing import Union

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from ninja import Router, Status
from ninja.errors import AuthorizationError
from prometheus_client import CONTENT_TYPE_LATEST

from backups_app.api.schemas import ErrorOut, HealthOut
from backups_app.services import health, metrics

FORBIDDEN = "Forbidden: add this address to BACKUP_METRICS_ALLOW or authenticate."
router = Router(tags=["monitoring"])


def _address_allowed(request):
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in health.allowed_networks())


def may_monitor(request):
    user = getattr(request, "user", None)
    return (_address_allowed(request) or (user is not None and user.is_active and user.is_staff)
            or any(import_string(path)(request) for path in settings.BACKUP_MONITORING_AUTHENTICATORS))


def monitoring_access(request):
    """Ninja auth for the health route: a refusal is 403, never a login prompt."""
    if not may_monitor(request):
        raise AuthorizationError(message=FORBIDDEN)
    return True


@router.get("/health", auth=monitoring_access,
            response={200: HealthOut, 503: Union[HealthOut, ErrorOut], 403: ErrorOut},
            summary="Health: fresh backups, reachable storage, a running scheduler, the last rehearsal")
def health_view(request):
    """The checks of `manage.py backup_health`; 503 when any fails, or when the configuration is
    broken (then with `{error: "misconfigured", detail}`)."""
    report = health.check_health()
    return Status(200 if report["status"] == "ok" else 503, report)


@require_GET
def metrics_view(request):
    if not may_monitor(request):
        return JsonResponse({"error": "permission_denied", "detail": FORBIDDEN}, status=403)
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
