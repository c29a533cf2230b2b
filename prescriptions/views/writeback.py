"""The clinic's WriteBack monitor: what went to the PIMS, what waits, what failed and why.

Thin doors onto ``prescriptions.writeback``: the list reads the outbox, the detail shows one
row with its attempts, and "Retry" calls ``writeback_retry`` (which audit-logs).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from clinics.access import clinic_for_user, get_for_clinic, is_onboarding
from clinics.display import when
from clinics.models import Clinic
from prescriptions import writeback
from prescriptions.models import WritebackIncident, WritebackItem
from prescriptions.views.listing import list_page, list_template

Status = WritebackItem.Status
Kind = WritebackItem.Kind


def _detail_url(clinic: Clinic, item_id: int) -> str:
    return reverse(
        "prescriptions:writeback-detail", kwargs={"clinic_slug": clinic.slug, "item_id": item_id}
    )


def writeback_fixes(
    request: HttpRequest, clinic: Clinic, item: WritebackItem
) -> list[tuple[str, str]]:
    """Where the cause of a failed writeback is fixed: (what to do, link), read from the
    records as they are now (a cause already fixed is not offered)."""
    if item.status != Status.FAILED or item.kind != Kind.PRESCRIBE:
        return []
    rx = item.prescription
    pet, owner, vet = rx.patient, rx.patient.client, rx.vet
    fixes = []
    slug = clinic.slug
    matches = reverse("records:update-queue", kwargs={"clinic_slug": slug})
    if not pet.pims_id:
        fixes.append(
            (
                f"{pet.name} has no PIMS record linked: open the pet's page to see why",
                reverse(
                    "records:patient-detail", kwargs={"clinic_slug": slug, "patient_id": pet.pk}
                ),
            )
        )
    if not owner.pims_id:
        fixes.append(
            (
                "The owner has no PIMS record linked: confirm a possible match in Manual updates",
                matches + "?kind=possible_match",
            )
        )
    if not pet.pims_id or not owner.pims_id:
        fixes.append(
            (
                "Once the records are in the practice system, pull them now",
                reverse("records:run-list", kwargs={"clinic_slug": slug}),
            )
        )
    if not vet.pims_user_id and item.target == WritebackItem.Target.EZYVET:
        if is_onboarding(request.user):
            fixes.append(
                (
                    f"{vet} has no ezyVet user: set it on the vet in the admin",
                    reverse("admin:clinics_vet_change", args=[vet.pk]),
                )
            )
        else:
            fixes.append(
                (
                    f"{vet} has no ezyVet user: the VetSync onboarding team links it (see the "
                    "Practice system page to contact them)",
                    reverse("clinics:integration", kwargs={"clinic_slug": slug}),
                )
            )
    return fixes


EPOCH_RANGE = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01


def payload_dates(value: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, raw value, readable date) for each epoch date in a payload (ezyVet sends and
    answers dates as Unix seconds), nested objects and lists included."""
    found: list[tuple[str, str, str]] = []
    if isinstance(value, dict):
        for key, inner in sorted(value.items()):
            found.extend(payload_dates(inner, f"{prefix}{key}."))
        return found
    if isinstance(value, list):
        for index, inner in enumerate(value):
            found.extend(payload_dates(inner, f"{prefix}{index}."))
        return found
    key = prefix.rstrip(".")
    name = key.rsplit(".", 1)[-1]
    if not ("date" in name or name.endswith(("_at", "created", "modified"))):
        return found
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return found
    if EPOCH_RANGE[0] <= seconds <= EPOCH_RANGE[1] and not isinstance(value, bool):
        moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        found.append((key, str(value), when(moment)))
    return found


def _pretty(value: Any) -> str:
    if value in (None, "", {}, []):
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder)


@login_required
@require_GET
def writeback_monitor(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Counts by status, the open incident, and the clinic's writebacks, newest first."""
    clinic = clinic_for_user(request, clinic_slug)
    query = " ".join(request.GET.get("q", "").split())[:200]
    status = request.GET.get("status", "")
    status = status if status in Status.values else ""
    kind = request.GET.get("kind", "")
    kind = kind if kind in Kind.values else ""
    rows = WritebackItem.objects.for_clinic(clinic).search(query)
    if status:
        rows = rows.filter(status=status)
    if kind:
        rows = rows.filter(kind=kind)
    rows = rows.select_related("prescription__patient__client", "order").order_by(
        "-created_at", "-pk"
    )
    page = list_page(request, rows)
    summary = writeback.writeback_counts(clinic=clinic)
    return TemplateResponse(
        request,
        list_template(request, "prescriptions/writeback_monitor.html", "writeback-list"),
        {
            "clinic": clinic,
            "page": page,
            "query": query,
            "status": status,
            "kind": kind,
            "statuses": [
                (value, label, summary["counts"].get(value, 0)) for value, label in Status.choices
            ],
            "kinds": Kind.choices,
            "total": sum(summary["counts"].values()),
            "counts": summary["counts"],
            "last_success": summary["last_success"],
            "incident": WritebackIncident.objects.filter(
                clinic=clinic, closed_at__isnull=True
            ).first(),
            "target": writeback.writeback_target(clinic),
            "filtered": bool(query or status or kind),
        },
    )


@login_required
@require_GET
def writeback_detail(request: HttpRequest, clinic_slug: str, item_id: int) -> HttpResponse:
    """One writeback: what was sent, each attempt, the last error, and its retries."""
    clinic = clinic_for_user(request, clinic_slug)
    item = get_for_clinic(
        WritebackItem.objects.select_related(
            "prescription__patient__client", "prescription__vet", "order", "retry_of"
        ),
        clinic,
        pk=item_id,
    )
    template = "prescriptions/writeback_detail.html"
    if request.htmx.target == "writeback-status":  # type: ignore[attr-defined]
        template += "#writeback-status"
    return TemplateResponse(
        request,
        template,
        {
            "clinic": clinic,
            "item": item,
            "attempts": list(item.attempts_made.order_by("number")),
            "retried_by": WritebackItem.objects.filter(retry_of=item).first(),
            "waiting_for": writeback.writeback_waiting_for(item),
            "fixes": writeback_fixes(request, clinic, item),
            "payload": _pretty(item.payload),
            "payload_dates": payload_dates(item.payload),
            "response_dates": payload_dates(item.response),
            "response": _pretty(item.response),
            # Only an ezyVet row moves on its own; an agent's row waits for the agent's pull.
            "polling": item.is_open and item.target == WritebackItem.Target.EZYVET,
        },
    )


@login_required
@require_POST
def writeback_retry(request: HttpRequest, clinic_slug: str, item_id: int) -> HttpResponse:
    """Send a failed writeback again as a new, linked row; then show that row."""
    clinic = clinic_for_user(request, clinic_slug)
    item = get_for_clinic(WritebackItem.objects.all(), clinic, pk=item_id)
    try:
        retry = writeback.writeback_retry(item=item, actor=request.user, request=request)
    except writeback.RetryError as exc:
        messages.error(request, str(exc))
        return redirect(_detail_url(clinic, item.pk))
    where = (
        "It is on its way to ezyVet."
        if retry.target == WritebackItem.Target.EZYVET
        else "It waits on the feed for the practice system's agent."
    )
    messages.success(request, f"Writeback {item.pk} is retried as writeback {retry.pk}. {where}")
    return redirect(_detail_url(clinic, retry.pk))


@login_required
@require_POST
def writeback_dismiss(request: HttpRequest, clinic_slug: str, item_id: int) -> HttpResponse:
    """Resolve a failed writeback without sending it, with the reason (audit-logged)."""
    clinic = clinic_for_user(request, clinic_slug)
    item = get_for_clinic(WritebackItem.objects.all(), clinic, pk=item_id)
    try:
        writeback.writeback_dismiss(
            item=item, actor=request.user, reason=request.POST.get("reason", ""), request=request
        )
    except writeback.DismissError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Writeback {item.pk} is dismissed; it will not be sent.")
    return redirect(_detail_url(clinic, item.pk))
