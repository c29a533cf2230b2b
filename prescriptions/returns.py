"""Returns: a shipment that came back (or never reached the owner), recorded by staff.

A model module of its own beside ``models.py`` (which imports it, so Django registers it): a
return is the afterlife of one order's shipment. The rules of what it changes and what reaches
the PIMS are in ``prescriptions/services/returns.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from clinics.models import Clinic


class ReturnReason(models.TextChoices):
    NOT_DELIVERED = "not_delivered", "Never reached the owner (lost, refused, undeliverable)"
    OWNER_RETURNED = "owner_returned", "The owner sent it back unused"
    DAMAGED = "damaged", "Arrived damaged, or the wrong item"
    CLINIC_STOPPED = "clinic_stopped", "The clinic stopped the treatment"


class ReturnEnd(models.TextChoices):
    """What happens to the prescriptions the shipment filled (ezyVet's ends after a dispense)."""

    KEEP = "", "Keep the prescription open (it can be filled again)"
    CANCELLED_CLIENT = "CANCELLED_CLIENT", "Stop it: the owner does not want it"
    CANCELLED_DR = "CANCELLED_DR", "Stop it: the vet stopped the treatment"


class ShipmentReturn(models.Model):
    """One order's shipment came back, whole or in part: what, when, why, who recorded it."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="returns")
    order = models.OneToOneField(
        "prescriptions.Order", on_delete=models.PROTECT, related_name="shipment_return"
    )
    reason = models.CharField(max_length=20, choices=ReturnReason.choices)
    note = models.TextField(blank=True)
    returned_on = models.DateField(help_text="The day it came back (the clinic's date).")
    is_full = models.BooleanField(help_text="Every unit of every line came back.")
    ended_as = models.CharField(
        "prescriptions",
        max_length=20,
        choices=ReturnEnd.choices,
        blank=True,
        help_text="Whether the prescriptions it filled were stopped with the return.",
    )
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_by_label = models.CharField(max_length=150)

    class Meta:
        ordering = ["-recorded_at", "-pk"]

    def __str__(self) -> str:
        return f"Return of {self.order}"


class ShipmentReturnLine(models.Model):
    shipment_return = models.ForeignKey(
        ShipmentReturn, on_delete=models.CASCADE, related_name="lines"
    )
    order_line = models.OneToOneField(
        "prescriptions.OrderLine", on_delete=models.PROTECT, related_name="returned"
    )
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="return_line_quantity_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} returned of {self.order_line}"
