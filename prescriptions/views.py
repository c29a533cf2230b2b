"""The clinic's prescription, Rx-request and order pages. Thin doors onto
``prescriptions/services.py``: every write goes through a service, which checks the rules and
writes the audit row; a ``PrescriptionError`` is shown to staff as it is."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Case, F, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinics.access import clinic_for_user, get_for_clinic
from clinics.models import AuditEvent, Clinic
from prescriptions.forms import (
    AutoshipForm,
    EndItemsForm,
    ItemFormSet,
    LineFormSet,
    OrderForm,
    PrescriptionForm,
    ReasonForm,
    RxApproveForm,
    RxDeclineForm,
    RxNoteForm,
    ShipForm,
    end_choices,
    open_items_for,
)
from prescriptions.models import (
    RX_REQUEST_LIFETIME,
    Autoship,
    ItemStatus,
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    RxRequest,
)
from prescriptions.rules import writeback_eligibility
from prescriptions.services import (
    PrescriptionError,
    autoship_create,
    order_cancel,
    order_hold,
    order_place,
    order_release,
    order_ship,
    prescription_approve,
    prescription_create,
    prescription_discard,
    prescription_items_end,
    prescription_mark_paid,
    rx_request_approve,
    rx_request_decline,
    rx_request_note_add,
    vet_for_user,
)
from records.models import Client, Patient

PAGE_SIZE = 50
PET_PICKER_LIMIT = 25
HISTORY_LIMIT = 200

OPEN = "open"


# --- shared pieces ---------------------------------------------------------------------------


def _form_error(form: Form) -> str:
    """A bound form's errors as one sentence, for a message after a redirect."""
    parts = [str(e) for e in form.non_field_errors()]
    for name, errors in form.errors.items():
        if name == "__all__":
            continue
        field = form.fields.get(name)
        label = str(field.label if field and field.label else name.replace("_", " "))
        parts.append(f"{label[:1].upper()}{label[1:]}: {' '.join(str(e) for e in errors)}")
    return " ".join(parts)


def _record_filter(request: HttpRequest, clinic: Clinic) -> tuple[Patient | None, Client | None]:
    """``?patient=`` or ``?client=`` narrows a list to one record (links from its page);
    another clinic's record is a 404 like everything else of that clinic."""
    patient_id = request.GET.get("patient", "")
    client_id = request.GET.get("client", "")
    if patient_id.isdigit():
        patient = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
        return patient, None
    if client_id.isdigit():
        return None, get_for_clinic(Client.objects.all(), clinic, pk=client_id)
    return None, None


def _pet_picker(clinic: Clinic, query: str) -> list[Patient]:
    """Pets whose name, or whose owner's name, contains what staff typed."""
    if not query:
        return []
    pets = Patient.objects.for_clinic(clinic).select_related("client")
    for word in query.split():
        pets = pets.filter(
            Q(name__icontains=word)
            | Q(client__last_name__icontains=word)
            | Q(client__first_name__icontains=word)
        )
    return list(pets.order_by("name", "client__last_name", "pk")[:PET_PICKER_LIMIT])


ACTION_LABELS = {
    "prescription.created": "Written",
    "prescription.approved": "Approved by a vet",
    "prescription.discarded": "Draft discarded",
    "prescription.paid": "Payment recorded",
    "prescription.item_ended": "Item ended",
    "order.placed": "Order placed",
    "order.shipped": "Shipped",
    "order.held": "Put on hold",
    "order.released": "Released from hold",
    "order.cancelled": "Cancelled",
    "rx_request.submitted": "Requested by the owner",
    "rx_request.approved": "Approved",
    "rx_request.declined": "Declined",
    "rx_request.note_added": "Internal note added",
    "rx_request.expired": "Expired without a decision",
}


def _history(obj: Any, *, items: Iterable[PrescriptionItem] = ()) -> list[dict[str, Any]]:
    """The object's audit events, newest first, each with a line a person can read."""
    names = {item.pk: str(item.product) for item in items}
    events = AuditEvent.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk)
    ).order_by("-created_at", "-pk")[:HISTORY_LIMIT]
    rows = []
    for event in events:
        before = event.before if isinstance(event.before, dict) else {}
        after = event.after if isinstance(event.after, dict) else {}
        detail = ""
        if event.action == "prescription.item_ended":
            old, new = before.get("status", ""), after.get("status", "")
            detail = (
                f"{names.get(int(after.get('item') or 0), 'An item')}: "
                f"{_status_label(old)} → {_status_label(new)}. {after.get('reason', '')}"
            )
        elif "reason" in after:
            detail = str(after["reason"])
        elif event.action == "order.shipped":
            parts = [str(after.get("shipped_on", "")), after.get("carrier"), after.get("tracking")]
            detail = " · ".join(str(p) for p in parts if p)
        rows.append(
            {
                "at": event.created_at,
                "by": event.actor_label,
                "label": ACTION_LABELS.get(event.action, event.action),
                "detail": detail.strip(),
            }
        )
    return rows


def _status_label(value: str) -> str:
    return ItemStatus(value).label if value in ItemStatus.values else value


# --- prescriptions ---------------------------------------------------------------------------

STATE_FILTERS = [
    (OPEN, "Open (a draft, or an item pending or current)"),
    *Prescription.State.choices,
]


@login_required
@require_GET
def prescription_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """The clinic's prescriptions, newest first: by state or open, searched by number, pet,
    owner or product, with each item's status."""
    clinic = clinic_for_user(request, clinic_slug)
    query = request.GET.get("q", "").strip()[:200]
    state = request.GET.get("state", "")
    patient, client = _record_filter(request, clinic)
    rxs = Prescription.objects.for_clinic(clinic)
    if state == OPEN:
        rxs = rxs.open()
    elif state in Prescription.State.values:
        rxs = rxs.filter(state=state)
    else:
        state = ""
    if patient is not None:
        rxs = rxs.filter(patient=patient)
    if client is not None:
        rxs = rxs.filter(patient__client=client)
    rxs = (
        rxs.search(query)
        .select_related("patient__client", "vet")
        .prefetch_related(
            Prefetch("items", queryset=PrescriptionItem.objects.select_related("product"))
        )
        .order_by("-created_at", "-pk")
    )
    template = "prescriptions/prescription_list.html"
    if request.htmx.target == "prescription-results":  # type: ignore[attr-defined]
        template += "#prescription-results"
    return TemplateResponse(
        request,
        template,
        {
            "clinic": clinic,
            "page": Paginator(rxs, PAGE_SIZE).get_page(request.GET.get("page")),
            "query": query,
            "state": state,
            "states": STATE_FILTERS,
            "state_label": dict(STATE_FILTERS).get(state, ""),
            "for_patient": patient,
            "for_client": client,
            "can_approve": vet_for_user(clinic=clinic, user=request.user) is not None,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def prescription_new(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Write a prescription for a pet: staff save a draft for a vet; a vet may approve it at
    once. Without ``?patient=`` the page is a pet picker."""
    clinic = clinic_for_user(request, clinic_slug)
    patient_id = request.GET.get("patient", "")
    if not patient_id.isdigit():
        query = request.GET.get("q", "").strip()[:100]
        return TemplateResponse(
            request,
            "prescriptions/pet_pick.html",
            {
                "clinic": clinic,
                "query": query,
                "pets": _pet_picker(clinic, query),
                "limit": PET_PICKER_LIMIT,
                "purpose": "prescription",
                "title": "New prescription",
                "action_url_name": "prescriptions:prescription-new",
            },
        )
    pet = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
    own_vet = vet_for_user(clinic=clinic, user=request.user)
    data = request.POST if request.method == "POST" else None
    form = PrescriptionForm(
        data,
        clinic=clinic,
        can_approve=own_vet is not None,
        initial={"vet": own_vet} if own_vet else None,
    )
    items = ItemFormSet(data, prefix="items")
    if request.method == "POST" and form.is_valid() and items.is_valid():
        # Staff have no "approve" field; one posted anyway still goes to the service, which
        # refuses anyone but a vet of the clinic (and nothing is created).
        wants_approval = form.cleaned_data.get("approve", False) or "approve" in request.POST
        try:
            prescription = prescription_create(
                clinic=clinic,
                patient=pet,
                vet=form.cleaned_data["vet"],
                items=items.specs(),
                actor=request.user,
                channel=form.cleaned_data["channel"],
                consult_ref=form.cleaned_data["consult_ref"],
                expires_on=form.cleaned_data["expires_on"],
                notes=form.cleaned_data["notes"],
                approve=bool(wants_approval),
                submission_id=form.cleaned_data["submission_id"],
                request=request,
            )
        except PrescriptionError as exc:
            form.add_error(None, str(exc))
        else:
            if prescription.state == Prescription.State.APPROVED:
                messages.success(
                    request,
                    f"{prescription.number} for {pet.name} is approved"
                    f"{' and on its way to the PIMS' if clinic.writeback_enabled else ''}.",
                )
            else:
                messages.success(
                    request,
                    f"{prescription.number} for {pet.name} is saved as a draft. "
                    "A vet of the clinic approves it from this page.",
                )
            return redirect(prescription)
    return TemplateResponse(
        request,
        "prescriptions/prescription_new.html",
        {
            "clinic": clinic,
            "pet": pet,
            "form": form,
            "items": items,
            "can_approve": own_vet is not None,
            "open_rx": list(
                Prescription.objects.for_clinic(clinic)
                .filter(patient=pet)
                .open()
                .order_by("-created_at")[:5]
            ),
        },
    )


def _prescription_for(clinic: Clinic, prescription_id: int) -> Prescription:
    return get_for_clinic(
        Prescription.objects.select_related(
            "patient__client", "vet", "created_by", "approved_by", "replaces"
        ),
        clinic,
        pk=prescription_id,
    )


@login_required
@require_GET
def prescription_detail(
    request: HttpRequest, clinic_slug: str, prescription_id: int
) -> HttpResponse:
    """One prescription: items and what is left, the rename links, payment, its WriteBack
    rows, orders, autoships, history, and what staff or a vet can do with it."""
    clinic = clinic_for_user(request, clinic_slug)
    prescription = _prescription_for(clinic, prescription_id)
    items = list(prescription.items.select_related("product").order_by("pk"))
    for item in items:
        item.end_choices = end_choices(item)  # type: ignore[attr-defined]
    rx_request = RxRequest.objects.filter(prescription=prescription).first()
    orders = list(
        Order.objects.filter(clinic=clinic, lines__prescription_item__prescription=prescription)
        .distinct()
        .order_by("-placed_at", "-pk")
    )
    can_approve = vet_for_user(clinic=clinic, user=request.user) is not None
    approved = prescription.state == Prescription.State.APPROVED
    open_items = [item for item in items if item.is_open]
    return TemplateResponse(
        request,
        "prescriptions/prescription_detail.html",
        {
            "clinic": clinic,
            "rx": prescription,
            "pet": prescription.patient,
            "owner": prescription.patient.client,
            "items": items,
            "open_items": open_items,
            "replaced_by": Prescription.objects.filter(replaces=prescription).first(),
            "rx_request": rx_request,
            "writebacks": list(prescription.writebacks.order_by("sequence", "pk")),
            "writeback_reasons": _not_written_back(prescription, items),
            "orders": orders,
            "autoships": list(
                Autoship.objects.filter(prescription_item__prescription=prescription)
                .select_related("product")
                .order_by("-created_at")
            ),
            "history": _history(prescription, items=items),
            "can_approve": can_approve,
            "can_pay": prescription.needs_payment and prescription.paid_at is None and approved,
            "can_end": approved and bool(open_items),
            "can_autoship": approved and not prescription.is_expired,
            "end_form": EndItemsForm(items=items),
            "autoship_form": AutoshipForm(),
        },
    )


@login_required
@require_POST
def prescription_action(
    request: HttpRequest, clinic_slug: str, prescription_id: int
) -> HttpResponse:
    """Approve, discard a draft, record payment, end items, start an autoship: one door,
    the ``action`` field says which. Always back to the prescription's page with a message."""
    clinic = clinic_for_user(request, clinic_slug)
    prescription = _prescription_for(clinic, prescription_id)
    action = request.POST.get("action", "")
    try:
        done = _prescription_do(request, prescription, action)
    except PrescriptionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect(prescription)


def _prescription_do(request: HttpRequest, rx: Prescription, action: str) -> str:
    """Run one action; the message to show, or ``PrescriptionError``."""
    if action == "approve":
        # The service refuses anyone but a vet of the clinic; the button is only a convenience.
        prescription_approve(prescription=rx, actor=request.user, request=request)
        return f"{rx.number} is approved."
    if action == "discard":
        reason = ReasonForm(request.POST)
        if not reason.is_valid():
            raise PrescriptionError(_form_error(reason))
        prescription_discard(
            prescription=rx,
            actor=request.user,
            reason=reason.cleaned_data["reason"],
            request=request,
        )
        return f"{rx.number} was discarded. It stays on record as void."
    if action == "pay":
        prescription_mark_paid(prescription=rx, actor=request.user, request=request)
        return f"Payment recorded for {rx.number}."
    if action == "end":
        items = list(rx.items.select_related("product"))
        form = EndItemsForm(request.POST, items=items)
        if not form.is_valid():
            raise PrescriptionError(_form_error(form))
        ended = prescription_items_end(
            prescription=rx,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            statuses={item.pk: status for item, status in form.chosen()},
            request=request,
        )
        return "Ended: " + "; ".join(
            f"{item.product} ({_status_label(item.status).lower()})" for item in ended
        )
    if action == "autoship":
        autoship_form = AutoshipForm(request.POST)
        if not autoship_form.is_valid():
            raise PrescriptionError(_form_error(autoship_form))
        item = (
            rx.items.select_related("product", "prescription")
            .filter(pk=autoship_form.cleaned_data["item"])
            .first()
        )
        if item is None:
            raise PrescriptionError("That item is not on this prescription.")
        autoship = autoship_create(
            item=item,
            actor=request.user,
            interval_days=autoship_form.cleaned_data["interval_days"],
            quantity=autoship_form.cleaned_data["quantity"],
            first_on=autoship_form.cleaned_data["first_on"],
            request=request,
        )
        return (
            f"Autoship started: {autoship.quantity} x {item.product} every "
            f"{autoship.interval_days} days, first order on {autoship.next_order_on:%d %b %Y}."
        )
    raise PrescriptionError("Choose an action.")


# --- owners' Rx requests ---------------------------------------------------------------------


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
    page = Paginator(requests_, PAGE_SIZE).get_page(request.GET.get("page"))
    today = timezone.localdate()
    for row in page.object_list:
        row.days_left = (timezone.localdate(row.expires_at) - today).days  # type: ignore[attr-defined]
    template = "prescriptions/rx_request_list.html"
    if request.htmx.target == "rx-request-results":  # type: ignore[attr-defined]
        template += "#rx-request-results"
    return TemplateResponse(
        request,
        template,
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
    forms: dict[str, Form] = {
        "note_form": RxNoteForm(),
        "asked_form": RxApproveForm(auto_id="asked-%s"),
        "changes_form": RxApproveForm(
            auto_id="changes-%s",
            initial={"product": rx_request.product_id, "quantity": rx_request.quantity},
        ),
        "decline_form": RxDeclineForm(auto_id="decline-%s"),
    }
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            done, bound = _rx_request_do(request, rx_request, action)
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
            "is_open": is_pending and rx_request.expires_at > now,
            "days_left": (timezone.localdate(rx_request.expires_at) - timezone.localdate()).days,
            "history": _history(rx_request),
            **forms,
        },
    )


def _rx_request_do(
    request: HttpRequest, rx_request: RxRequest, action: str
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
        approve_form = RxApproveForm(request.POST, auto_id=f"{variant}-%s")
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


def _not_written_back(prescription: Prescription, items: list[PrescriptionItem]) -> list[str]:
    """Why the PIMS hears nothing of this prescription: the eligibility rule's own words."""
    reasons: list[str] = []
    for item in items:
        verdict = writeback_eligibility(
            clinic=prescription.clinic,
            product=item.product,
            channel=prescription.channel,
            prescribed=True,
        )
        reason = verdict.reason.rstrip(".")
        if not verdict.eligible and reason not in reasons:
            reasons.append(reason)
    if not reasons and prescription.state == Prescription.State.DRAFT:
        reasons.append("a draft is sent once a vet approves it")
    return reasons


def _owner_told(rx_request: RxRequest) -> str:
    if rx_request.patient.client.email:
        return f"The owner was emailed at {rx_request.patient.client.email}."
    return "The owner has no email address: tell them by phone."


# --- orders ----------------------------------------------------------------------------------

ORDER_FILTERS = [(OPEN, "Open (placed or on hold)"), *Order.Status.choices]


def _order_search(orders: QuerySet[Order], query: str) -> QuerySet[Order]:
    if not query:
        return orders
    number = Order.number_from_text(query)
    if number is not None:
        return orders.filter(pk=number)
    for word in query.split():
        orders = orders.filter(
            Q(patient__name__icontains=word)
            | Q(client__last_name__icontains=word)
            | Q(client__first_name__icontains=word)
        )
    return orders


@login_required
@require_GET
def order_list(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """The clinic's orders, newest first: by status, searched by number, pet or owner."""
    clinic = clinic_for_user(request, clinic_slug)
    query = request.GET.get("q", "").strip()[:200]
    status = request.GET.get("status", "")
    patient, client = _record_filter(request, clinic)
    orders: QuerySet[Order] = Order.objects.for_clinic(clinic)
    if status == OPEN:
        orders = Order.objects.for_clinic(clinic).open()
    elif status in Order.Status.values:
        orders = orders.filter(status=status)
    else:
        status = ""
    if patient is not None:
        orders = orders.filter(patient=patient)
    if client is not None:
        orders = orders.filter(client=client)
    orders = (
        _order_search(orders, query)
        .select_related("patient", "client")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=OrderLine.objects.select_related("product", "prescription_item"),
            )
        )
        .order_by("-placed_at", "-pk")
    )
    template = "prescriptions/order_list.html"
    if request.htmx.target == "order-results":  # type: ignore[attr-defined]
        template += "#order-results"
    return TemplateResponse(
        request,
        template,
        {
            "clinic": clinic,
            "page": Paginator(orders, PAGE_SIZE).get_page(request.GET.get("page")),
            "query": query,
            "status": status,
            "statuses": ORDER_FILTERS,
            "status_label": dict(ORDER_FILTERS).get(status, ""),
            "for_patient": patient,
            "for_client": client,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def order_new(request: HttpRequest, clinic_slug: str) -> HttpResponse:
    """Place an order for a pet: prescription lines fill one of the pet's open items, OTC
    lines need none. Without ``?patient=`` the page is a pet picker."""
    clinic = clinic_for_user(request, clinic_slug)
    patient_id = request.GET.get("patient", "")
    if not patient_id.isdigit():
        query = request.GET.get("q", "").strip()[:100]
        return TemplateResponse(
            request,
            "prescriptions/pet_pick.html",
            {
                "clinic": clinic,
                "query": query,
                "pets": _pet_picker(clinic, query),
                "limit": PET_PICKER_LIMIT,
                "purpose": "order",
                "title": "New order",
                "action_url_name": "prescriptions:order-new",
            },
        )
    pet = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
    items = [item for item in open_items_for(pet) if item.remaining > 0]
    data = request.POST if request.method == "POST" else None
    form = OrderForm(data)
    lines = LineFormSet(data, prefix="lines", items=items)
    if request.method == "POST" and form.is_valid() and lines.is_valid():
        try:
            order = order_place(
                clinic=clinic,
                patient=pet,
                lines=lines.specs(),
                actor=request.user,
                channel=form.cleaned_data["channel"],
                submission_id=form.cleaned_data["submission_id"],
                request=request,
            )
        except PrescriptionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{order.number} placed for {pet.name}.")
            return redirect(order)
    return TemplateResponse(
        request,
        "prescriptions/order_new.html",
        {"clinic": clinic, "pet": pet, "form": form, "lines": lines, "open_items": items},
    )


def _order_for(clinic: Clinic, order_id: int) -> Order:
    return get_for_clinic(
        Order.objects.select_related("patient", "client", "placed_by", "autoship"),
        clinic,
        pk=order_id,
    )


@login_required
@require_GET
def order_detail(request: HttpRequest, clinic_slug: str, order_id: int) -> HttpResponse:
    """One order: its lines and which are written back (and why), shipping, hold, history."""
    clinic = clinic_for_user(request, clinic_slug)
    order = _order_for(clinic, order_id)
    lines = list(
        order.lines.select_related("product", "prescription_item__prescription").order_by("pk")
    )
    for line in lines:
        line.writeback = writeback_eligibility(  # type: ignore[attr-defined]
            clinic=clinic,
            product=line.product,
            channel=order.channel,
            prescribed=line.prescription_item is not None,
        )
    return TemplateResponse(
        request,
        "prescriptions/order_detail.html",
        {
            "clinic": clinic,
            "order": order,
            "pet": order.patient,
            "owner": order.client,
            "lines": lines,
            "total": sum((line.price for line in lines), start=0),
            "writebacks": list(
                order.writebacks.select_related("prescription").order_by("sequence", "pk")
            ),
            "history": _history(order),
            "ship_form": ShipForm(),
            "reason_form": ReasonForm(),
        },
    )


@login_required
@require_POST
def order_action(request: HttpRequest, clinic_slug: str, order_id: int) -> HttpResponse:
    """Ship, hold, release or cancel: one door, the ``action`` field says which."""
    clinic = clinic_for_user(request, clinic_slug)
    order = _order_for(clinic, order_id)
    action = request.POST.get("action", "")
    try:
        done = _order_do(request, order, action)
    except PrescriptionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect(order)


def _order_do(request: HttpRequest, order: Order, action: str) -> str:
    if action == "ship":
        form = ShipForm(request.POST)
        if not form.is_valid():
            raise PrescriptionError(_form_error(form))
        order_ship(
            order=order,
            actor=request.user,
            shipped_on=form.cleaned_data["shipped_on"],
            carrier=form.cleaned_data["carrier"],
            tracking_number=form.cleaned_data["tracking_number"],
            request=request,
        )
        return f"{order.number} is marked shipped on {form.cleaned_data['shipped_on']:%d %b %Y}."
    if action in ("hold", "cancel"):
        reason_form = ReasonForm(request.POST)
        if not reason_form.is_valid():
            raise PrescriptionError(_form_error(reason_form))
        reason = reason_form.cleaned_data["reason"]
        if action == "hold":
            order_hold(order=order, actor=request.user, reason=reason, request=request)
            return f"{order.number} is on hold. Release it when it can ship."
        order_cancel(order=order, actor=request.user, reason=reason, request=request)
        return f"{order.number} is cancelled."
    if action == "release":
        order_release(order=order, actor=request.user, request=request)
        return f"{order.number} is released and can ship."
    raise PrescriptionError("Choose an action.")
