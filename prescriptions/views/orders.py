"""The clinic's order pages: the list, a new order for a pet, one order and its actions
(ship, hold, release, cancel)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinics.access import clinic_for_user, get_for_clinic
from clinics.models import Clinic
from prescriptions.forms import (
    LineFormSet,
    OrderForm,
    ReasonForm,
    ReturnForm,
    ShipForm,
    open_items_for,
)
from prescriptions.models import Order, OrderLine, ShipmentReturn
from prescriptions.rules import writeback_eligibility
from prescriptions.services import (
    PrescriptionError,
    order_cancel,
    order_hold,
    order_place,
    order_release,
    order_return,
    order_ship,
)
from prescriptions.views.history import audit_history
from prescriptions.views.listing import list_page, list_template
from prescriptions.views.prescriptions import (
    OPEN,
    form_error,
    pet_pick_page,
    record_filter,
)
from records.models import ManualUpdate, Patient
from vetsync.lib.numbers import id_from

SHIPPING_KINDS = (ManualUpdate.Kind.CLIENT_NAME, ManualUpdate.Kind.CLIENT_ADDRESS)

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
    patient, client = record_filter(request, clinic)
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
    return TemplateResponse(
        request,
        list_template(request, "prescriptions/order_list.html", "order-results"),
        {
            "clinic": clinic,
            "page": list_page(request, orders),
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
    patient_id = id_from(request.GET.get("patient"))
    if patient_id is None:
        return pet_pick_page(
            request,
            clinic,
            purpose="order",
            title="New order",
            action_url_name="prescriptions:order-new",
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
        {
            "clinic": clinic,
            "pet": pet,
            "form": form,
            "lines": lines,
            "open_items": items,
            # Staff confirm the shipping name and address before an order (the seeds): a
            # change the PIMS sent is shown here, to accept or keep, not only on the client.
            "shipping_updates": list(
                ManualUpdate.objects.pending()
                .filter(client=pet.client, kind__in=SHIPPING_KINDS)
                .order_by("created_at")
            ),
            "here": request.get_full_path(),
        },
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
            "history": audit_history(order),
            "ship_form": ShipForm(),
            "reason_form": ReasonForm(),
            "shipment_return": _return_of(order),
            "return_form": ReturnForm(lines=lines)
            if order.status == Order.Status.SHIPPED
            else None,
        },
    )


def _return_of(order: Order) -> ShipmentReturn | None:
    return (
        ShipmentReturn.objects.filter(order=order)
        .select_related("recorded_by")
        .prefetch_related("lines__order_line__product")
        .first()
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
            raise PrescriptionError(form_error(form))
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
            raise PrescriptionError(form_error(reason_form))
        reason = reason_form.cleaned_data["reason"]
        if action == "hold":
            order_hold(order=order, actor=request.user, reason=reason, request=request)
            return f"{order.number} is on hold. Release it when it can ship."
        order_cancel(order=order, actor=request.user, reason=reason, request=request)
        return f"{order.number} is cancelled."
    if action == "return":
        return _order_return(request, order)
    if action == "release":
        order_release(order=order, actor=request.user, request=request)
        return f"{order.number} is released and can ship."
    raise PrescriptionError("Choose an action.")


def _order_return(request: HttpRequest, order: Order) -> str:
    form = ReturnForm(request.POST, lines=list(order.lines.select_related("product")))
    if not form.is_valid():
        raise PrescriptionError(form_error(form))
    record = order_return(
        order=order,
        actor=request.user,
        reason=form.cleaned_data["reason"],
        returned_on=form.cleaned_data["returned_on"],
        quantities=form.quantities(),
        end_as=form.cleaned_data["end_as"] or "",
        note=form.cleaned_data["note"],
        request=request,
    )
    what = "The whole shipment" if record.is_full else "Part of the shipment"
    stopped = " The prescription is stopped." if record.ended_as else ""
    return f"{what} of {order.number} is recorded as returned.{stopped}"
