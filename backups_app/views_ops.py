"""Monitoring endpoints: ``GET /api/system/health`` (JSON, 200 healthy / 503 not) and
``GET /metrics`` (Prometheus text). Both answer clients from BACKUP_METRICS_ALLOW addresses
(loopback by default), logged-in staff, and whatever BACKUP_MONITORING_AUTHENTICATORS accepts
(dotted paths to ``callable(request) -> bool``; API tokens plug in there)."""

import ipaddress
from functools import wraps

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from backups_app.errors import ConfigurationError
from backups_app.services import health, metrics


def allowed_networks():
    networks = []
    for entry in settings.BACKUP_METRICS_ALLOW.split(","):
        if entry.strip():
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(f"BACKUP_METRICS_ALLOW: {entry.strip()!r} is not an address or network "
                                         "(e.g. 10.0.0.0/8).") from None
    return networks


def _address_allowed(request):
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in allowed_networks())


def monitoring_access(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = getattr(request, "user", None)
        if (_address_allowed(request) or (user is not None and user.is_active and user.is_staff)
                or any(import_string(path)(request) for path in settings.BACKUP_MONITORING_AUTHENTICATORS)):
            return view(request, *args, **kwargs)
        return JsonResponse({"detail": "Forbidden: add this address to BACKUP_METRICS_ALLOW or authenticate."},
                            status=403)

    return wrapped


@require_GET
@monitoring_access
def health_view(request):
    report = health.check_health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@require_GET
@monitoring_access
def metrics_view(request):
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
