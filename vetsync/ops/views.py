"""``/healthz`` (database, broker, beat, each queue's worker) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from vetsync.ops import metrics
from vetsync.ops.heartbeats import beat_age, heartbeat_ages

logger = logging.getLogger(__name__)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        logger.warning("healthz: database check failed: %s", exc)
        return f"error: {type(exc).__name__}"


def _broker() -> str:
    from vetsync.celery import app as celery_app

    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        logger.warning("healthz: broker check failed: %s", exc)
        return f"error: {type(exc).__name__}"


def _age_state(age: float | None) -> str:
    if age is None:
        return "not seen yet"
    if age > settings.HEARTBEAT_STALE_SECONDS:
        return f"stale: {age:.0f} s"
    return "ok"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database and the broker answer and no heartbeat is stale; 503 otherwise.

    ``beat`` and ``queues`` say "not seen yet" until beat's first heartbeat went through
    (up to 30 s after start); that alone does not fail the check.
    """
    checks = {"database": _database(), "broker": _broker()}
    try:
        ages = heartbeat_ages()
    except Exception as exc:  # the cache is the broker's Redis in production
        logger.warning("healthz: heartbeats unreadable: %s", exc)
        ages = {}
    queues = {queue: _age_state(age) for queue, age in ages.items()}
    beat = _age_state(beat_age(ages)) if ages else "unknown"
    healthy = all(v == "ok" for v in checks.values()) and not any(
        state.startswith("stale") for state in [beat, *queues.values()]
    )
    return JsonResponse(
        {"status": "ok" if healthy else "error", **checks, "beat": beat, "queues": queues},
        status=200 if healthy else 503,
    )


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for allowed in settings.METRICS_ALLOWED_ADDRESSES:
        try:
            if address in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            logger.warning("METRICS_ALLOWED_ADDRESSES: %r is not an address", allowed)
    return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; only with METRICS_TOKEN as a bearer token or from an address
    in METRICS_ALLOWED_ADDRESSES (403 otherwise, and always when neither is configured)."""
    if not _allowed(request):
        return HttpResponse(
            "Forbidden: /metrics needs its bearer token.\n", status=403, content_type="text/plain"
        )
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
