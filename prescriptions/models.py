"""Products, prescriptions and their items, Rx requests, orders, and the WriteBack outbox.

The rules about what may change how live in ``prescriptions/rules.py`` (item status
transitions, writeback eligibility); the writes in ``prescriptions/services.py`` and
``prescriptions/writeback.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from clinics.models import Clinic, Vet
from records.models import Client, Patient
from vetsync.lib.numbers import id_from


def record_number(text: str, prefix: str, *, prefixed: bool = False) -> int | None:
    """The number in ``RX-000123`` (or ``RX000123``, or a bare ``123``). ``prefixed``: only
    with its prefix, spaces allowed (``rx 123``), for a search box that also takes phones and
    postcodes, where a bare number is not a record number."""
    text = text.strip().upper()
    if prefixed:
        text = text.replace(" ", "")
        if not text.startswith(prefix):
            return None
    text = text.removeprefix(f"{prefix}-").removeprefix(prefix)
    return id_from(text, max_digits=9)


# --- the catalogue -------------------------------------------------------------------------


class ProductKind(models.TextChoices):
    RX_MEDICATION = "rx_medication", "Prescription medication"
    RX_NUTRITION = "rx_nutrition", "Rx nutrition (prescription diet)"
    OTC = "otc", "OTC (over the counter)"


class Channel(models.TextChoices):
    """Where an order (or the prescription it fills) came in."""

    PORTAL = "portal", "Pharmacy portal (ScriptRight)"
    STORE = "store", "Clinic online store"
    ECONNECT = "econnect", "eConnect"


class ProductQuerySet(models.QuerySet["Product"]):
    def active(self) -> ProductQuerySet:
        return self.filter(is_active=True)


class Product(models.Model):
    """One item of the pharmacy's catalogue, shared by every clinic."""

    sku = models.CharField(
        "SKU",
        max_length=40,
        unique=True,
        help_text="The pharmacy's product code; sent to the PIMS as the item's reference.",
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=ProductKind.choices)
    is_compounded = models.BooleanField(
        "compounded",
        default=False,
        help_text="Made by the compounding pharmacy (Wedgewood): never written back.",
    )
    unit = models.CharField(max_length=30, default="tablet", help_text="What one unit is.")
    price = models.DecimalField(
        max_digits=9, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    is_active = models.BooleanField("active", default=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def needs_prescription(self) -> bool:
        return self.kind != ProductKind.OTC


# --- prescriptions -------------------------------------------------------------------------


class ItemStatus(models.TextChoices):
    """ezyVet's item statuses; the transitions between them are in ``rules.py``."""

    PENDING = "PENDING", "Pending"
    CURRENT = "CURRENT", "Current"
    DECLINED_DR = "DECLINED_DR", "Declined by the vet"
    DECLINED_CLIENT = "DECLINED_CLIENT", "Declined by the owner"
    CANCELLED_DR = "CANCELLED_DR", "Cancelled by the vet"
    CANCELLED_CLIENT = "CANCELLED_CLIENT", "Cancelled by the owner"


OPEN_ITEM_STATUSES = (ItemStatus.PENDING, ItemStatus.CURRENT)
# How the rename flow starts the end reason of the items it ends (``represcription``).
RENAME_END_PREFIX = "Pet renamed from "


class PrescriptionQuerySet(models.QuerySet["Prescription"]):
    def for_clinic(self, clinic: Clinic) -> PrescriptionQuerySet:
        return self.filter(clinic=clinic)

    def open(self) -> PrescriptionQuerySet:
        """Drafts and approved prescriptions with an item still Pending or Current."""
        return self.filter(
            Q(state=Prescription.State.DRAFT)
            | Q(state=Prescription.State.APPROVED, items__status__in=OPEN_ITEM_STATUSES)
        ).distinct()

    def search(self, query: str) -> PrescriptionQuerySet:
        query = query.strip()
        if not query:
            return self
        number = Prescription.number_from_text(query)
        if number is not None:
            return self.filter(pk=number)
        return self.filter(
            Q(patient__name__icontains=query)
            | Q(patient__client__last_name__icontains=query)
            | Q(patient__client__first_name__icontains=query)
            | Q(items__product__name__icontains=query)
        ).distinct()


class Prescription(models.Model):
    """One pet's prescription by one real vet of the clinic, with one or more items."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft (awaiting a vet)"
        APPROVED = "approved", "Approved"
        VOID = "void", "Void (draft discarded)"

    class Source(models.TextChoices):
        CLINIC = "clinic", "Written by the clinic"
        REQUEST = "request", "From an owner's Rx request"
        RENAME = "rename", "Re-prescribed after a pet rename"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="prescriptions")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="prescriptions")
    vet = models.ForeignKey(
        Vet,
        on_delete=models.PROTECT,
        related_name="prescriptions",
        help_text="The prescribing vet: a real vet of the clinic, never an integration user.",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CLINIC)
    channel = models.CharField(
        max_length=10,
        choices=Channel.choices,
        default=Channel.PORTAL,
        help_text="Where it is filled; eConnect orders are never written back.",
    )
    consult_ref = models.CharField(
        "clinical record",
        max_length=40,
        blank=True,
        help_text="The consult in the PIMS this prescription belongs to, if any.",
    )
    patient_name = models.CharField(
        max_length=100, help_text="The pet's name when prescribed (a rename re-prescribes)."
    )
    notes = models.TextField(blank=True)
    expires_on = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    needs_payment = models.BooleanField(
        default=False,
        help_text="An owner's request: sent to the PIMS and filled only once paid.",
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    replaces = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaced_by",
        help_text="The prescription this one re-writes after the pet was renamed.",
    )
    pims_id = models.CharField(
        "PIMS id",
        max_length=40,
        blank=True,
        help_text="ezyVet's id for this prescription, kept for later PATCHes.",
    )
    submission_id = models.UUIDField(
        null=True, blank=True, unique=True, editable=False, help_text="The form post that made it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = PrescriptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["clinic", "state", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(state="draft") | Q(state="void") | Q(approved_at__isnull=False),
                name="prescription_approved_has_time",
            )
        ]

    def __str__(self) -> str:
        return f"{self.number} for {self.patient_name}"

    def get_absolute_url(self) -> str:
        return reverse(
            "prescriptions:prescription-detail",
            kwargs={"clinic_slug": self.clinic.slug, "prescription_id": self.pk},
        )

    @property
    def number(self) -> str:
        return f"RX-{self.pk:06d}" if self.pk else "RX-new"

    @staticmethod
    def number_from_text(text: str, *, prefixed: bool = False) -> int | None:
        return record_number(text, "RX", prefixed=prefixed)

    @property
    def external_reference(self) -> str:
        """The reference the PIMS stores; how a lost POST is found again."""
        return f"{settings.VETSYNC_REFERENCE_PREFIX}-{self.number}"

    @property
    def is_sendable(self) -> bool:
        """Approved by a vet and, for an owner's request, paid for (the ezyVet guide's rule)."""
        if self.state != self.State.APPROVED:
            return False
        return not self.needs_payment or self.paid_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_on < self.clinic.localdate()

    @property
    def replacement(self) -> Prescription | None:
        """The prescription that re-writes this one after a rename, if any."""
        try:
            return self.replaced_by  # type: ignore[no-any-return]
        except Prescription.DoesNotExist:
            return None


class PrescriptionItem(models.Model):
    prescription = models.ForeignKey(Prescription, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(
        "quantity per fill", validators=[MinValueValidator(1)], default=30
    )
    refills = models.PositiveSmallIntegerField(default=0, help_text="Fills after the first.")
    instructions = models.TextField()
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    status_date = models.DateTimeField(default=timezone.now)
    dispensed_quantity = models.PositiveIntegerField(default=0)
    last_dispensed_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["prescription", "product"], name="prescription_item_one_per_product"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="prescription_item_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} x {self.quantity}"

    @property
    def total_quantity(self) -> int:
        return self.quantity * (self.refills + 1)

    @property
    def remaining(self) -> int:
        return max(self.total_quantity - self.dispensed_quantity, 0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ITEM_STATUSES

    @property
    def ended_by_rename(self) -> bool:
        """Ended by a staff rename (ezyVet records it as declined or cancelled by the vet)."""
        return not self.is_open and self.end_reason.startswith(RENAME_END_PREFIX)


# --- owners' Rx requests -------------------------------------------------------------------

RX_REQUEST_LIFETIME = timedelta(days=45)
RX_REQUEST_REMINDER_AFTER = timedelta(days=38)


class RxRequestQuerySet(models.QuerySet["RxRequest"]):
    def for_clinic(self, clinic: Clinic) -> RxRequestQuerySet:
        return self.filter(clinic=clinic)

    def pending(self) -> RxRequestQuerySet:
        return self.filter(status=RxRequest.Status.PENDING)


class RxRequest(models.Model):
    """A pet owner asks the clinic for a prescription (through the store or the portal)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the clinic"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="rx_requests")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="rx_requests")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)], default=30)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.STORE)
    owner_note = models.TextField("note from the owner", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decline_reason = models.CharField(max_length=300, blank=True)
    owner_message = models.TextField(
        "note to the owner", blank=True, help_text="Sent to the owner with the decision."
    )
    prescription = models.OneToOneField(
        Prescription,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rx_request",
    )

    objects = RxRequestQuerySet.as_manager()

    class Meta:
        ordering = ["expires_at", "pk"]
        indexes = [models.Index(fields=["clinic", "status", "expires_at"])]

    def __str__(self) -> str:
        return f"Rx request {self.pk}: {self.product} for {self.patient.name}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.expires_at is None:
            self.expires_at = self.created_at + RX_REQUEST_LIFETIME
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def reminder_due_at(self) -> datetime:
        return self.created_at + RX_REQUEST_REMINDER_AFTER


class RxRequestNote(models.Model):
    """An internal note on a request: for the clinic, never shown to the owner."""

    request = models.ForeignKey(RxRequest, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"Note on Rx request {self.request_id}"


# --- orders --------------------------------------------------------------------------------


class OrderQuerySet(models.QuerySet["Order"]):
    def for_clinic(self, clinic: Clinic) -> OrderQuerySet:
        return self.filter(clinic=clinic)

    def open(self) -> OrderQuerySet:
        return self.filter(status__in=(Order.Status.PLACED, Order.Status.ON_HOLD))


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        ON_HOLD = "on_hold", "On hold"
        SHIPPED = "shipped", "Shipped"
        RETURNED = "returned", "Returned"
        CANCELLED = "cancelled", "Cancelled"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="orders")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="orders")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="orders")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.PORTAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLACED)
    hold_reason = models.CharField(max_length=300, blank=True)
    autoship = models.ForeignKey(
        "Autoship", on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    placed_at = models.DateTimeField(default=timezone.now)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    shipped_on = models.DateField(null=True, blank=True)
    carrier = models.CharField(max_length=60, blank=True)
    tracking_number = models.CharField(max_length=80, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    submission_id = models.UUIDField(
        null=True, blank=True, unique=True, editable=False, help_text="The form post that made it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-placed_at", "-pk"]
        indexes = [models.Index(fields=["clinic", "status", "-placed_at"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="shipped") | Q(shipped_on__isnull=False),
                name="order_shipped_has_date",
            )
        ]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse(
            "prescriptions:order-detail",
            kwargs={"clinic_slug": self.clinic.slug, "order_id": self.pk},
        )

    @property
    def number(self) -> str:
        return f"ORD-{self.pk:06d}" if self.pk else "ORD-new"

    @staticmethod
    def number_from_text(text: str, *, prefixed: bool = False) -> int | None:
        return record_number(text, "ORD", prefixed=prefixed)

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.PLACED, self.Status.ON_HOLD)


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    prescription_item = models.ForeignKey(
        PrescriptionItem,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="order_lines",
        help_text="The item this line fills; empty for an OTC product sold without one.",
    )
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(max_digits=9, decimal_places=2)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="order_line_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} x {self.quantity}"


class Autoship(models.Model):
    """A repeat order: a new order every ``interval_days`` until ended or put on hold."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ON_HOLD = "on_hold", "On hold"
        ENDED = "ended", "Ended"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="autoships")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="autoships")
    prescription_item = models.ForeignKey(
        PrescriptionItem, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    interval_days = models.PositiveSmallIntegerField(default=30, validators=[MinValueValidator(7)])
    next_order_on = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    hold_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["next_order_on", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["prescription_item"],
                condition=Q(status__in=["active", "on_hold"]),
                name="autoship_one_per_item",
            )
        ]

    def __str__(self) -> str:
        return f"Autoship of {self.product} every {self.interval_days} days"


# --- the WriteBack outbox ------------------------------------------------------------------


class WritebackQuerySet(models.QuerySet["WritebackItem"]):
    def for_clinic(self, clinic: Clinic) -> WritebackQuerySet:
        return self.filter(clinic=clinic)

    def search(self, query: str) -> WritebackQuerySet:
        query = query.strip()
        if not query:
            return self
        rx = Prescription.number_from_text(query, prefixed=True)
        if rx is not None:
            return self.filter(prescription_id=rx)
        order = Order.number_from_text(query, prefixed=True)
        if order is not None:
            return self.filter(order_id=order)
        return self.filter(
            Q(prescription__patient__name__icontains=query)
            | Q(prescription__patient__client__last_name__icontains=query)
            | Q(prescription__patient__client__first_name__icontains=query)
            | Q(prescription__patient__client__email__iexact=query)
        )


class WritebackItem(models.Model):
    """One write to the PIMS, committed with the change that caused it (the outbox row).

    The row, not a Celery message, is the source of truth: a beat sweep delivers any row that
    is due and not delivered. Rows of one prescription are delivered in ``sequence`` order.
    """

    class Kind(models.TextChoices):
        PRESCRIBE = "prescribe", "Prescription sent"
        DISPENSE = "dispense", "Dispense (shipment)"
        STATUS = "status", "Item ended"
        RETURN = "return", "Shipment returned"

    class Target(models.TextChoices):
        EZYVET = "ezyvet", "ezyVet API"
        AGENT = "agent", "Agent writeback feed"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        HELD = "held", "Held: needs the clinic"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        RETRIED = "retried", "Failed, retried"
        DISMISSED = "dismissed", "Failed, dismissed by staff"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="writebacks")
    prescription = models.ForeignKey(
        Prescription, on_delete=models.PROTECT, related_name="writebacks"
    )
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, null=True, blank=True, related_name="writebacks"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.CharField(max_length=10, choices=Target.choices)
    sequence = models.PositiveIntegerField(
        help_text="Order within the prescription: a PATCH never overtakes its POST."
    )
    key = models.CharField(
        max_length=120, unique=True, help_text="Idempotency key: one row per change, ever."
    )
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    retry_of = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="retried_by",
        help_text="The failed item this one retries.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WritebackQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["prescription", "sequence"]),
            models.Index(fields=["clinic", "status", "-created_at"]),
            models.Index(fields=["clinic", "target", "status"]),
            # WriteBack health: a clinic's last success and month of deliveries, not all it had.
            models.Index(fields=["clinic", "delivered_at"], name="writeback_delivered"),
        ]

    def __str__(self) -> str:
        return f"Writeback {self.pk} ({self.get_kind_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.SENDING)


class WritebackAttempt(models.Model):
    class Outcome(models.TextChoices):
        SENDING = "sending", "In progress (or the worker stopped)"
        DELIVERED = "delivered", "Delivered"
        ALREADY_APPLIED = "already", "Found already applied"
        RETRY = "retry", "Failed, will retry"
        FAILED = "failed", "Failed for good"

    item = models.ForeignKey(WritebackItem, on_delete=models.CASCADE, related_name="attempts_made")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SENDING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    may_have_applied = models.BooleanField(
        default=True,
        help_text="False when the PIMS refused the write before applying it (a 429).",
    )

    class Meta:
        ordering = ["item", "number"]
        constraints = [
            models.UniqueConstraint(fields=["item", "number"], name="writeback_attempt_number")
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of writeback {self.item_id}"


class WritebackIncident(models.Model):
    """A clinic's writebacks started failing: one alert email per incident, not per item."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="writeback_incidents")
    opened_at = models.DateTimeField(default=timezone.now)
    first_error = models.TextField(blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic"],
                condition=Q(closed_at__isnull=True),
                name="writeback_one_open_incident",
            )
        ]

    def __str__(self) -> str:
        return f"WriteBack incident at {self.clinic} since {self.opened_at:%Y-%m-%d %H:%M}"


# Registered with the app's models (a module of its own: see its docstring).
from prescriptions.returns import (  # noqa: E402, F401
    ReturnEnd,
    ReturnReason,
    ShipmentReturn,
    ShipmentReturnLine,
)
