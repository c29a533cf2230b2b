"""Owners' Rx requests: the list a vet works through and one request's page, where a vet
approves (as asked or with changes) or declines."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from clinics.access import clinic_for_user, get_for_clinic
from prescriptions.forms import RxApproveForm, RxDeclineForm, RxNoteForm
from prescriptions.models import RX_REQUEST_LIFETIME, RxRequest
from prescriptions.services import (
    PrescriptionError,
    rx_request_approve,
    rx_request_decline,
    rx_request_note_add,
    vet_for_user,
)
from prescriptions.views.history import audit_history
from prescriptions.views.listing import list_page, list_template
from prescriptions.views.prescriptions import consult_choices


@login_required
@require_GET
def rx_request_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Owners' requests: those waiting first, the soonest to expire on top."""
    clinic = clinic_for_user(request, clinic_slug)
    query = request.GET.get("q", "").strip()[:200]
    status = request.GET.get("status", "")
    requests_ = RxRequest.objects.for_clinic(clinic)
    if status in RxRequest.Status.values:
        requests_ = requests_.filter(status=status)
    else:
        status = ""
    for word in query.split():
        requests_ = requests_.filter(
            Q(patient__name__icontains=word)
            | Q(patient__client__last_name__icontains=word)
            | Q(patient__client__first_name__icontains=word)
            | Q(product__name__icontains=word)
        )
    pending = RxRequest.Status.PENDING
    requests_ = (
        requests_.select_related("patient__client", "product", "decided_by")
        .annotate(
            waiting=Case(
                When(status=pending, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by(
            "waiting",
            Case(When(status=pending, then=F("expires_at"))).asc(nulls_last=True),
            F("decided_at").desc(nulls_last=True),
            "-pk",
        )
    )
    page = list_page(request, requests_)
    today = timezone.localdate()
    for row in page.object_list:
        row.days_left = (timezone.localdate(row.expires_at) - today).days  # type: ignore[attr-defined]
    return TemplateResponse(
        request,
        list_template(request, "prescriptions/rx_request_list.html", "rx-request-results"),
        {
            "clinic": clinic,
            "page": page,
            "query": query,
            "status": status,
            "statuses": RxRequest.Status.choices,
            "status_label": dict(RxRequest.Status.choices).get(status, ""),
            "pending_count": RxRequest.objects.for_clinic(clinic).pending().count(),
            "lifetime_days": RX_REQUEST_LIFETIME.days,
            "can_decide": vet_for_user(clinic=clinic, user=request.user) is not None,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def rx_request_detail(request: HttpRequest, clinic_slug: str, request_id: int) -> HttpResponse:
    """One request: the owner's note, internal notes, and the vet's decision (approve as
    asked, approve with changes, or decline with a reason and a note to the owner)."""
    clinic = clinic_for_user(request, clinic_slug)
    rx_request = get_for_clinic(
        RxRequest.objects.select_related(
            "patient__client", "product", "decided_by", "prescription"
        ),
        clinic,
        pk=request_id,
    )
    can_decide = vet_for_user(clinic=clinic, user=request.user) is not None
    consults, consults_error = (
        consult_choices(clinic, rx_request.patient)
        if can_decide and rx_request.status == RxRequest.Status.PENDING
        else (None, "")
    )
    forms: dict[str, Form] = {
        "note_form": RxNoteForm(),
        "asked_form": RxApproveForm(auto_id="asked-%s", consults=consults),
        "changes_form": RxApproveForm(
            auto_id="changes-%s",
            consults=consults,
            initial={"product": rx_request.product_id, "quantity": rx_request.quantity},
        ),
        "decline_form": RxDeclineForm(auto_id="decline-%s"),
    }
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            done, bound = _rx_request_do(request, rx_request, action, consults)
        except PrescriptionError as exc:
            messages.error(request, str(exc))
            return redirect("prescriptions:rx-request-detail", clinic.slug, rx_request.pk)
        if done:
            messages.success(request, done)
            return redirect("prescriptions:rx-request-detail", clinic.slug, rx_request.pk)
        forms.update(bound)  # the form with its errors, as typed
    now = timezone.now()
    is_pending = rx_request.status == RxRequest.Status.PENDING
    return TemplateResponse(
        request,
        "prescriptions/rx_request_detail.html",
        {
            "clinic": clinic,
            "rx_request": rx_request,
            "pet": rx_request.patient,
            "owner": rx_request.patient.client,
            "notes": list(rx_request.notes.select_related("author").order_by("created_at", "pk")),
            "can_decide": can_decide,
            "consults_error": consults_error,
            "is_open": is_pending and rx_request.expires_at > now,
            "days_left": (timezone.localdate(rx_request.expires_at) - timezone.localdate()).days,
            "history": audit_history(rx_request),
            **forms,
        },
    )


def _rx_request_do(
    request: HttpRequest,
    rx_request: RxRequest,
    action: str,
    consults: list[tuple[str, str]] | None = None,
) -> tuple[str, dict[str, Form]]:
    """Run one action: (message, {}) when done, ("", {name: bound form}) on a form error;
    the service's refusal (not a vet, already decided, expired) is a ``PrescriptionError``."""
    if action == "note":
        form = RxNoteForm(request.POST)
        if not form.is_valid():
            return "", {"note_form": form}
        rx_request_note_add(
            rx_request=rx_request,
            actor=request.user,
            text=form.cleaned_data["text"],
            request=request,
        )
        return "Note added (for the clinic only).", {}
    if action == "approve":
        variant = "changes" if request.POST.get("variant") == "changes" else "asked"
        approve_form = RxApproveForm(request.POST, auto_id=f"{variant}-%s", consults=consults)
        if not approve_form.is_valid():
            return "", {f"{variant}_form": approve_form}
        data = approve_form.cleaned_data
        prescription = rx_request_approve(
            rx_request=rx_request,
            actor=request.user,
            product=data["product"] if variant == "changes" else None,
            quantity=data["quantity"] if variant == "changes" else None,
            refills=data["refills"],
            instructions=data["instructions"],
            owner_message=data["owner_message"],
            consult_ref=data.get("consult_ref") or "",
            request=request,
        )
        told = _owner_told(rx_request)
        paid = " It goes to the practice system once the owner has paid."
        return f"Approved as {prescription.number}. {told}{paid}", {}
    if action == "decline":
        decline_form = RxDeclineForm(request.POST, auto_id="decline-%s")
        if not decline_form.is_valid():
            return "", {"decline_form": decline_form}
        rx_request_decline(
            rx_request=rx_request,
            actor=request.user,
            reason=decline_form.cleaned_data["reason"],
            owner_message=decline_form.cleaned_data["owner_message"],
            request=request,
        )
        return f"Declined. {_owner_told(rx_request)}", {}
    raise PrescriptionError("Choose an action.")


def _owner_told(rx_request: RxRequest) -> str:
    if rx_request.patient.client.email:
        return f"The owner was emailed at {rx_request.patient.client.email}."
    return "The owner has no email address: tell them by phone."
