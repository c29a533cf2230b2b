"""Pages that span apps: the landing redirect and the clinic dashboard (the health check is
in vetsync/ops)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.views.decorators.http import require_GET

from clinics.access import clinic_for_user, is_onboarding, is_pet_owner_care
from clinics.models import Clinic, Integration
from clinics.tasks import WORKER_HEARTBEAT_KEY
from prescriptions.models import Order, Prescription, RxRequest, WritebackItem
from records.models import SyncRun
from records.services import clinic_record_counts, manual_update_counts

logger = logging.getLogger(__name__)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Send each user where their work is: their clinic, a clinic chooser, /care/ or /admin/."""
    clinics = list(Clinic.objects.for_user(request.user).order_by("name"))
    if len(clinics) == 1:
        return redirect(clinics[0])
    if not clinics and is_pet_owner_care(request.user):
        return redirect("care:search")
    if not clinics and is_onboarding(request.user):
        return redirect("admin:index")
    return TemplateResponse(request, "clinic_choose.html", {"clinics": clinics})


@login_required
@require_GET
def clinic_dashboard(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    clinic = clinic_for_user(request, clinic_slug)
    integration = Integration.objects.filter(clinic=clinic).first()
    return TemplateResponse(
        request,
        "clinic_dashboard.html",
        {
            "clinic": clinic,
            "integration": integration,
            "counts": clinic_record_counts(clinic=clinic),
            "updates": manual_update_counts(clinic=clinic),
            "rx_counts": _prescription_counts(clinic),
            "last_run": SyncRun.objects.for_clinic(clinic).order_by("-created_at", "-id").first(),
            "worker_heartbeat": _heartbeat(),
        },
    )


def _heartbeat() -> datetime | None:
    """When the Celery worker last answered (an ISO time in the cache), if it ever did."""
    value = cache.get(WORKER_HEARTBEAT_KEY)
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _prescription_counts(clinic: Clinic) -> dict[str, int]:
    """What waits for the clinic on the prescription side: one query per model."""
    rx = Prescription.objects.for_clinic(clinic).aggregate(
        drafts=Count("pk", filter=Q(state=Prescription.State.DRAFT))
    )
    orders = Order.objects.for_clinic(clinic).aggregate(
        open=Count("pk", filter=Q(status__in=(Order.Status.PLACED, Order.Status.ON_HOLD))),
        on_hold=Count("pk", filter=Q(status=Order.Status.ON_HOLD)),
    )
    failed = WritebackItem.objects.filter(clinic=clinic, status=WritebackItem.Status.FAILED)
    return {
        "writebacks_failed": failed.count(),
        "drafts": rx["drafts"],
        "rx_requests": RxRequest.objects.for_clinic(clinic).pending().count(),
        "open_orders": orders["open"],
        "orders_on_hold": orders["on_hold"],
    }


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico where a page names no icon (the admin): the app's icon.
    Resolved per request: the static URL may carry a manifest hash."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))
