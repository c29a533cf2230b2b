"""The clinic's prescription pages, and the pieces the Rx-request and order pages share
with them (paging, the record filter, the pet picker, form errors as a message). Thin
doors onto ``prescriptions.services``: every write goes through a service, which checks
the rules and writes the audit row; a ``PrescriptionError`` is shown to staff as it is."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinics.access import clinic_for_user, get_for_clinic
from clinics.models import Clinic, Integration
from clinics.prescribers import PimsListError, ezyvet_consults, ezyvet_vets, is_ezyvet
from prescriptions.forms import (
    AutoshipForm,
    EndItemsForm,
    ItemFormSet,
    PrescriptionForm,
    ReasonForm,
    end_choices,
)
from prescriptions.models import (
    Autoship,
    Order,
    Prescription,
    PrescriptionItem,
    RxRequest,
    ShipmentReturn,
)
from prescriptions.rules import writeback_eligibility
from prescriptions.services import (
    PrescriptionError,
    autoship_create,
    prescription_approve,
    prescription_create,
    prescription_discard,
    prescription_items_end,
    prescription_mark_paid,
    vet_for_user,
)
from prescriptions.views.history import audit_history, status_label
from prescriptions.views.listing import list_page, list_template
from records.models import Client, Patient
from vetsync.lib.numbers import id_from

PET_PICKER_LIMIT = 25

OPEN = "open"


def form_error(form: Form) -> str:
    """A bound form's errors as one sentence, for a message after a redirect."""
    parts = [str(e) for e in form.non_field_errors()]
    for name, errors in form.errors.items():
        if name == "__all__":
            continue
        field = form.fields.get(name)
        label = str(field.label if field and field.label else name.replace("_", " "))
        parts.append(f"{label[:1].upper()}{label[1:]}: {' '.join(str(e) for e in errors)}")
    return " ".join(parts)


def record_filter(request: HttpRequest, clinic: Clinic) -> tuple[Patient | None, Client | None]:
    """``?patient=`` or ``?client=`` narrows a list to one record (links from its page);
    another clinic's record is a 404 like everything else of that clinic."""
    patient_id = id_from(request.GET.get("patient"))
    client_id = id_from(request.GET.get("client"))
    if patient_id is not None:
        patient = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
        return patient, None
    if client_id is not None:
        return None, get_for_clinic(Client.objects.all(), clinic, pk=client_id)
    return None, None


def pet_picker(clinic: Clinic, query: str) -> list[Patient]:
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


def pet_pick_page(
    request: HttpRequest, clinic: Clinic, *, purpose: str, title: str, action_url_name: str
) -> HttpResponse:
    """What a "new" page shows without ``?patient=``: a picker of the clinic's pets."""
    query = request.GET.get("q", "").strip()[:100]
    return TemplateResponse(
        request,
        "prescriptions/pet_pick.html",
        {
            "clinic": clinic,
            "query": query,
            "pets": pet_picker(clinic, query),
            "limit": PET_PICKER_LIMIT,
            "purpose": purpose,
            "title": title,
            "action_url_name": action_url_name,
        },
    )


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
    patient, client = record_filter(request, clinic)
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
        .select_related("patient__client", "vet", "replaced_by", "clinic")
        .prefetch_related(
            Prefetch("items", queryset=PrescriptionItem.objects.select_related("product"))
        )
        .order_by("-created_at", "-pk")
    )
    return TemplateResponse(
        request,
        list_template(request, "prescriptions/prescription_list.html", "prescription-results"),
        {
            "clinic": clinic,
            "page": list_page(request, rxs),
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
    patient_id = id_from(request.GET.get("patient"))
    if patient_id is None:
        return pet_pick_page(
            request,
            clinic,
            purpose="prescription",
            title="New prescription",
            action_url_name="prescriptions:prescription-new",
        )
    pet = get_for_clinic(Patient.objects.select_related("client"), clinic, pk=patient_id)
    own_vet = vet_for_user(clinic=clinic, user=request.user)
    data = request.POST if request.method == "POST" else None
    consults, consults_error = consult_choices(clinic, pet)
    form = PrescriptionForm(
        data,
        clinic=clinic,
        can_approve=own_vet is not None,
        consults=consults,
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
            messages.success(request, _written_message(prescription, pet, clinic))
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
            "consults_error": consults_error,
            "open_rx": list(
                Prescription.objects.for_clinic(clinic)
                .filter(patient=pet)
                .open()
                .order_by("-created_at")[:5]
            ),
        },
    )


def consult_choices(clinic: Clinic, pet: Patient) -> tuple[list[tuple[str, str]] | None, str]:
    """On ezyVet, the pet's consults to pick from (date at the clinic, reason, vet), and why
    they are missing if ezyVet could not be read; ``None`` off ezyVet (a free-text box)."""
    integration = Integration.objects.filter(clinic=clinic).first()
    if not is_ezyvet(integration):
        return None, ""
    assert integration is not None
    if not pet.pims_id:
        return [], f"{pet.name} is not linked to ezyVet yet, so it has no consults to pick."
    try:
        consults = ezyvet_consults(integration=integration, animal_id=pet.pims_id)
    except PimsListError as exc:
        return [], f"The consults could not be read from ezyVet: {exc.plain}"
    try:
        known = ezyvet_vets(integration=integration)
        vets = {v.user_id: " ".join(filter(None, (v.title, v.last_name))) for v in known}
    except PimsListError:
        vets = {}
    choices = []
    for consult in consults:
        day = clinic.localdate(consult.date).strftime("%d %b %Y") if consult.date else "undated"
        parts = [day, consult.reason or "(no reason given)", vets.get(consult.vet_user_id, "")]
        choices.append((consult.consult_id, " · ".join(p for p in parts if p)))
    return choices, "" if choices else f"ezyVet has no consults for {pet.name}."


def _written_message(prescription: Prescription, pet: Patient, clinic: Clinic) -> str:
    """What staff read once a prescription is written: approved, or a draft for a vet."""
    if prescription.state == Prescription.State.APPROVED:
        return (
            f"{prescription.number} for {pet.name} is approved"
            f"{' and on its way to the PIMS' if clinic.writeback_enabled else ''}."
        )
    return (
        f"{prescription.number} for {pet.name} is saved as a draft. "
        "A vet of the clinic approves it from this page."
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
    replaced_by = Prescription.objects.filter(replaces=prescription).first()
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
            "replaced_by": replaced_by,
            "rx_request": rx_request,
            "writebacks": list(prescription.writebacks.order_by("sequence", "pk")),
            "writeback_reasons": _not_written_back(prescription, items),
            "orders": orders,
            "returns": list(
                ShipmentReturn.objects.filter(order__in=orders)
                .select_related("order", "recorded_by")
                .prefetch_related("lines__order_line__product")
            ),
            "autoships": list(
                Autoship.objects.filter(prescription_item__prescription=prescription)
                .select_related("product")
                .order_by("-created_at")
            ),
            "history": audit_history(prescription, items=items),
            "can_approve": can_approve,
            "can_pay": prescription.needs_payment
            and prescription.paid_at is None
            and approved
            and replaced_by is None,
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
            raise PrescriptionError(form_error(reason))
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
            raise PrescriptionError(form_error(form))
        ended = prescription_items_end(
            prescription=rx,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            statuses={item.pk: status for item, status in form.chosen()},
            request=request,
        )
        return "Ended: " + "; ".join(
            f"{item.product} ({status_label(item.status).lower()})" for item in ended
        )
    if action == "autoship":
        autoship_form = AutoshipForm(request.POST)
        if not autoship_form.is_valid():
            raise PrescriptionError(form_error(autoship_form))
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
