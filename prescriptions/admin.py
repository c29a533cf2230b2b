"""The onboarding team's view of prescriptions: the catalogue, prescriptions, Rx requests and
orders (read-only: they change through the clinic's pages and the services), and WriteBack
across every clinic, with "Retry failed writebacks" and a per-clinic health page."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Exists, Model, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from clinics.access import is_onboarding
from clinics.admin import AuditedAdmin
from clinics.admin.filters import ClinicFilter
from clinics.models import Clinic
from prescriptions import writeback
from prescriptions.models import (
    Order,
    OrderLine,
    Prescription,
    PrescriptionItem,
    Product,
    RxRequest,
    ShipmentReturn,
    WritebackAttempt,
    WritebackIncident,
    WritebackItem,
    WritebackQuerySet,
)
from vetsync.lib.paging import page_of
from vetsync.lib.subqueries import count_of

Status = WritebackItem.Status


class TeamReadable:
    """The onboarding team reads these without model permissions of their own: the admin site
    already admits only the team (``VetSyncAdminSite.has_permission``)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_onboarding(request.user) or super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return is_onboarding(request.user) or super().has_view_permission(request, obj)  # type: ignore[misc]


class ReadOnly(TeamReadable):
    """Domain state changes through the services (with their audit rows and writebacks),
    never by editing a row here."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        # Every field shown is read-only (each admin here lists its ``fields``).
        shown = getattr(self, "fields", None) or ()
        return [name for name in shown if isinstance(name, str)]


class NumberedAdmin(admin.ModelAdmin):
    """A read-only list whose search box also takes the record's number as staff say it
    (``RX-000123``, ``ORD 123``): that one row."""

    number_from_text: Any = staticmethod(lambda text, prefixed: None)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        number = self.number_from_text(search_term, prefixed=True)
        if number is not None:
            return queryset.filter(pk=number), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="number", ordering="pk")
    def number(self, obj: Any) -> str:
        return str(obj.number)


def _admin_link(obj: Model, label: str) -> SafeString:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label)


def _pretty(value: Any) -> SafeString | str:
    if value in (None, "", {}, []):
        return "—"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder)
    return format_html("<pre>{}</pre>", text)


# --- the catalogue ---------------------------------------------------------------------------


@admin.register(Product)
class ProductAdmin(TeamReadable, AuditedAdmin):
    list_display = ["name", "sku", "kind", "is_compounded", "unit", "price", "is_active"]
    list_filter = ["kind", "is_compounded", "is_active"]
    search_fields = ["name", "sku"]
    ordering = ["name"]


# --- prescriptions, requests, orders (read-only) ---------------------------------------------


class PrescriptionItemInline(ReadOnly, admin.TabularInline):
    model = PrescriptionItem
    extra = 0
    fields = [
        "product",
        "quantity",
        "refills",
        "instructions",
        "status",
        "status_date",
        "dispensed_quantity",
        "last_dispensed_at",
        "end_reason",
    ]


@admin.register(Prescription)
class PrescriptionAdmin(ReadOnly, NumberedAdmin):
    number_from_text = staticmethod(Prescription.number_from_text)
    list_display = [
        "number",
        "clinic",
        "patient_name",
        "owner",
        "vet",
        "state",
        "source",
        "channel",
        "created_at",
        "approved_at",
    ]
    list_filter = ["state", "source", "channel", ClinicFilter]
    search_fields = ["patient__name", "patient__client__last_name", "patient__client__email"]
    search_help_text = "A prescription number (RX-000123), a pet's name, or an owner's last name."
    list_select_related = ["clinic", "patient__client", "vet"]
    date_hierarchy = "created_at"
    inlines = [PrescriptionItemInline]
    fields = [
        "number",
        "clinic",
        "patient",
        "patient_name",
        "vet",
        "state",
        "source",
        "channel",
        "consult_ref",
        "expires_on",
        "notes",
        "created_at",
        "created_by",
        "approved_at",
        "approved_by",
        "paid_at",
        "replaces",
        "pims_id",
    ]

    @admin.display(description="owner", ordering="patient__client__last_name")
    def owner(self, obj: Prescription) -> str:
        return obj.patient.client.full_name


@admin.register(RxRequest)
class RxRequestAdmin(ReadOnly, admin.ModelAdmin):
    list_display = [
        "pk",
        "clinic",
        "patient",
        "product",
        "quantity",
        "channel",
        "status",
        "created_at",
        "expires_at",
        "reminder_sent_at",
    ]
    list_filter = ["status", "channel", ClinicFilter]
    search_fields = ["patient__name", "patient__client__last_name", "product__name"]
    list_select_related = ["clinic", "patient", "product"]
    fields = [
        "clinic",
        "patient",
        "product",
        "quantity",
        "channel",
        "owner_note",
        "status",
        "created_at",
        "expires_at",
        "reminder_sent_at",
        "decided_at",
        "decided_by",
        "decline_reason",
        "owner_message",
        "prescription",
    ]


class OrderLineInline(ReadOnly, admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = ["product", "prescription_item", "quantity", "price"]


class ShipmentReturnInline(ReadOnly, admin.StackedInline):
    model = ShipmentReturn
    extra = 0
    fields = [
        "reason",
        "returned_on",
        "is_full",
        "ended_as",
        "note",
        "recorded_at",
        "recorded_by_label",
    ]


@admin.register(Order)
class OrderAdmin(ReadOnly, NumberedAdmin):
    number_from_text = staticmethod(Order.number_from_text)
    list_display = [
        "number",
        "clinic",
        "client",
        "patient",
        "channel",
        "status",
        "placed_at",
        "shipped_on",
        "carrier",
        "tracking_number",
    ]
    list_filter = ["status", "channel", ClinicFilter]
    search_fields = ["client__last_name", "client__email", "patient__name", "tracking_number"]
    search_help_text = "An order number (ORD-000123), an owner's last name or email, a pet's name."
    list_select_related = ["clinic", "client", "patient"]
    date_hierarchy = "placed_at"
    inlines = [OrderLineInline, ShipmentReturnInline]
    fields = [
        "number",
        "clinic",
        "client",
        "patient",
        "channel",
        "status",
        "hold_reason",
        "autoship",
        "placed_at",
        "placed_by",
        "shipped_on",
        "carrier",
        "tracking_number",
        "cancelled_at",
    ]


# --- WriteBack -------------------------------------------------------------------------------


class WritebackAttemptInline(ReadOnly, admin.TabularInline):
    model = WritebackAttempt
    extra = 0
    fields = ["number", "started_at", "finished_at", "outcome", "http_status", "error"]


@admin.register(WritebackItem)
class WritebackItemAdmin(ReadOnly, admin.ModelAdmin):
    change_list_template = "prescriptions/writeback_admin_changelist.html"
    # Narrow enough for a laptop: status and error first; target, sequence and the
    # delivery time are on each row's page and in the filters.
    list_display = [
        "pk",
        "status",
        "clinic",
        "prescription_number",
        "order_number",
        "kind",
        "attempts",
        "created_at",
        "error",
    ]
    list_display_links = ["pk"]
    # A fleet's outbox grows by a row a second and is kept: no filter or count here reads all
    # of it (the date drill-down and the total count did).
    list_filter = [
        "status",
        "target",
        "kind",
        ClinicFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["key"]  # the real search is WritebackItem.objects.search, below
    search_help_text = "A client or pet name, an owner's email, ORD-000123 or RX-000123."
    list_select_related = ["clinic", "prescription", "order"]
    show_full_result_count = False
    list_per_page = 50
    inlines = [WritebackAttemptInline]
    actions = ["retry_failed"]
    fields = [
        "clinic",
        "prescription_link",
        "order_link",
        "kind",
        "target",
        "sequence",
        "key",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "created_at",
        "delivered_at",
        "last_error",
        "retry_of_link",
        "retried_by_link",
        "payload_json",
        "response_json",
    ]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        return cast(WritebackQuerySet, queryset).search(search_term), False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return is_onboarding(request.user)

    @admin.action(description="Retry failed writebacks", permissions=["retry"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[WritebackItem]) -> None:
        retried, skipped = [], []
        for item in queryset.order_by("pk"):
            try:
                retry = writeback.writeback_retry(item=item, actor=request.user, request=request)
            except writeback.RetryError:
                skipped.append(item)
                continue
            retried.append((item, retry))
        if retried:
            pairs = ", ".join(f"#{old.pk} as #{new.pk}" for old, new in retried)
            self.message_user(request, f"Retried {len(retried)} writeback(s): {pairs}.")
        if skipped:
            listed = ", ".join(
                f"#{item.pk} ({item.get_status_display().lower()})" for item in skipped
            )
            self.message_user(
                request,
                f"Skipped {len(skipped)} that had not failed (only a failed writeback can be "
                f"retried): {listed}.",
                messages.WARNING,
            )

    @admin.display(description="prescription", ordering="prescription_id")
    def prescription_number(self, obj: WritebackItem) -> str:
        return obj.prescription.number

    @admin.display(description="order", ordering="order_id")
    def order_number(self, obj: WritebackItem) -> str:
        return obj.order.number if obj.order else "—"

    @admin.display(description="last error")
    def error(self, obj: WritebackItem) -> str:
        text = obj.last_error
        return text if len(text) <= 60 else text[:59] + "…"

    @admin.display(description="prescription")
    def prescription_link(self, obj: WritebackItem) -> SafeString:
        return _admin_link(obj.prescription, obj.prescription.number)

    @admin.display(description="order")
    def order_link(self, obj: WritebackItem) -> SafeString | str:
        return _admin_link(obj.order, obj.order.number) if obj.order else "—"

    @admin.display(description="retry of")
    def retry_of_link(self, obj: WritebackItem) -> SafeString | str:
        return _admin_link(obj.retry_of, f"#{obj.retry_of_id}") if obj.retry_of else "—"

    @admin.display(description="retried by")
    def retried_by_link(self, obj: WritebackItem) -> SafeString | str:
        retry = WritebackItem.objects.filter(retry_of=obj).first()
        return _admin_link(retry, f"#{retry.pk}") if retry else "—"

    @admin.display(description="payload")
    def payload_json(self, obj: WritebackItem) -> SafeString | str:
        return _pretty(obj.payload)

    @admin.display(description="response")
    def response_json(self, obj: WritebackItem) -> SafeString | str:
        return _pretty(obj.response)

    # --- WriteBack health across clinics ---

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "health/",
                self.admin_site.admin_view(self.health_view),
                name="prescriptions_writebackitem_health",
            ),
            *super().get_urls(),
        ]

    def health_view(self, request: HttpRequest) -> HttpResponse:
        """Every clinic with WriteBack on or with writebacks: failing first, then pending; a
        page at a time."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        page, rows = writeback_health_page(request.GET.get("page"))
        return TemplateResponse(
            request,
            "prescriptions/writeback_health.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "WriteBack health by clinic",
                "page": page,
                "rows": rows,
                "totals": writeback_health_totals(),
                "window_days": HEALTH_DELIVERED_WINDOW.days,
                "changelist": reverse("admin:prescriptions_writebackitem_changelist"),
            },
        )


HEALTH_PAGE = 50
HEALTH_DELIVERED_WINDOW = dt.timedelta(days=30)
WAITING = [WritebackItem.Status.PENDING, WritebackItem.Status.SENDING, WritebackItem.Status.HELD]


def writeback_health_page(number: str | None) -> tuple[Page, list[dict[str, Any]]]:
    """One page of clinics with their failed and waiting counts, oldest waiting, deliveries of
    the last 30 days, last success and open incident. Each figure is read from the clinic's
    own rows (the outbox grows by a row a second across a fleet and is kept)."""
    items = WritebackItem.objects.filter(clinic=OuterRef("pk"))
    delivered = items.filter(status=WritebackItem.Status.DELIVERED)
    waiting = items.filter(status__in=WAITING)
    incident = WritebackIncident.objects.filter(clinic=OuterRef("pk"), closed_at__isnull=True)
    clinics = (
        Clinic.objects.filter(Q(writeback_enabled=True) | Exists(items))
        .select_related("integration")
        .annotate(
            failed=count_of(items.filter(status=WritebackItem.Status.FAILED)),
            pending=count_of(waiting),
            has_incident=Exists(incident),
            delivered=count_of(
                delivered.filter(delivered_at__gte=timezone.now() - HEALTH_DELIVERED_WINDOW)
            ),
            oldest_pending=Subquery(waiting.order_by("created_at").values("created_at")[:1]),
            last_success=Subquery(delivered.order_by("-delivered_at").values("delivered_at")[:1]),
        )
        .order_by("-failed", "-has_incident", "-pending", "name", "pk")
    )
    page = page_of(clinics, HEALTH_PAGE, number)
    incidents = {
        row.clinic_id: row
        for row in WritebackIncident.objects.filter(
            clinic_id__in=[c.pk for c in page.object_list], closed_at__isnull=True
        )
    }
    return page, [_health_row(clinic, incidents) for clinic in page.object_list]


def _health_row(clinic: Any, incidents: dict[int, WritebackIncident]) -> dict[str, Any]:
    integration = getattr(clinic, "integration", None)
    return {
        "clinic": clinic,
        "target": writeback.writeback_target(clinic),
        "connector": integration.get_connector_display() if integration else "",
        "failed": clinic.failed,
        "pending": clinic.pending,
        "delivered": clinic.delivered,
        "oldest_pending": clinic.oldest_pending,
        "last_success": clinic.last_success,
        "incident": incidents.get(clinic.pk),
    }


def writeback_health_totals() -> dict[str, Any]:
    """Failed and waiting across every clinic (small sets, on the status index) and the last
    delivery (the newest delivered row: no pass over every delivered one)."""
    rows = WritebackItem.objects.all()
    return {
        "failed": rows.filter(status=WritebackItem.Status.FAILED).count(),
        "waiting": rows.filter(status__in=WAITING).count(),
        "last_success": rows.filter(status=WritebackItem.Status.DELIVERED)
        .order_by("-pk")
        .values_list("delivered_at", flat=True)
        .first(),
    }
