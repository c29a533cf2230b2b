"""Clients (pet owners) and patients (pets): the pharmacy's copy, merged from PIMS and store."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from clinics.models import Clinic


class ClientQuerySet(models.QuerySet["Client"]):
    def for_clinic(self, clinic: Clinic) -> ClientQuerySet:
        return self.filter(clinic=clinic)


class Client(models.Model):
    """A pet owner as the pharmacy knows them. Name and address here are the shipping ones."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="clients")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    address_line1 = models.CharField("address line 1", max_length=200, blank=True)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, default="US")
    is_active = models.BooleanField("active", default=True)
    customer_ref = models.CharField(
        "store customer ref",
        max_length=64,
        blank=True,
        help_text="The home-delivery store's id for this customer, when they have one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClientQuerySet.as_manager()

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "customer_ref"],
                condition=~Q(customer_ref=""),
                name="client_unique_customer_ref_per_clinic",
            )
        ]
        indexes = [models.Index(fields=["clinic", "last_name", "first_name", "id"])]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_home_delivery_customer(self) -> bool:
        return bool(self.customer_ref)

    def address_lines(self) -> list[str]:
        city_line = " ".join(part for part in (self.city, self.state, self.postcode) if part)
        return [line for line in (self.address_line1, self.address_line2, city_line) if line]


class PatientQuerySet(models.QuerySet["Patient"]):
    def for_clinic(self, clinic: Clinic) -> PatientQuerySet:
        return self.filter(clinic=clinic)


class WeightUnit(models.TextChoices):
    KG = "kg", "kg"
    LB = "lb", "lb"


class Patient(models.Model):
    """A pet. It belongs to one client; ``clinic`` is kept alongside to scope every query."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="patients")
    name = models.CharField(max_length=100)
    species = models.CharField(max_length=60, blank=True)
    breed = models.CharField(max_length=100, blank=True)
    sex = models.CharField(max_length=40, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    weight = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    weight_unit = models.CharField(max_length=2, choices=WeightUnit.choices, default=WeightUnit.KG)
    is_deceased = models.BooleanField("deceased", default=False)
    deceased_on = models.DateField(null=True, blank=True)
    microchip = models.CharField(max_length=30, blank=True)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__isnull=True) | Q(weight__gte=0),
                name="patient_weight_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(deceased_on__isnull=True) | Q(is_deceased=True),
                name="patient_deceased_date_only_if_deceased",
            ),
        ]
        indexes = [models.Index(fields=["clinic", "name"])]

    def __str__(self) -> str:
        return self.name
