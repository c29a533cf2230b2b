"""Clients (pet owners) and patients (pets): the pharmacy's copy, merged from PIMS and store."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from django.utils import timezone

from clinics.models import Clinic
from records.matching import normalize_phone


def _prefix(expression: Any, prefix: str) -> Q:
    """``expression`` starts with ``prefix``, written as a range an index can seek to.

    ``LIKE 'abc%'`` uses a b-tree index only under particular collations or operator classes
    (and not at all in SQLite with Django's ESCAPE clause); ``>= 'abc' AND < 'abd'`` does
    everywhere, and is exactly "starts with" in byte order: SQLite's, and PostgreSQL's with a
    C collation (README: the database is created with one). No LIKE beside it: the planner
    multiplies the two conditions' selectivities as if independent, and a pet name matching a
    tenth of the pets was estimated at a hundredth (owners then sorted from a nested loop
    of 15,000 index probes instead of one pass over the names' covering index).
    """
    at_least = GreaterThanOrEqual(expression, prefix)
    # The first text after every one starting with ``prefix``: its last character moved on
    # one. The last code point cannot be: then the one before it moves on, and a prefix of
    # nothing but last code points has no text after it to bound it.
    stem = prefix.rstrip(chr(sys.maxunicode))
    if not stem:
        return Q(at_least)
    return Q(at_least, LessThan(expression, stem[:-1] + chr(ord(stem[-1]) + 1)))


# Phone punctuation people type: "(503) 555-0142", "503.555.0142", "+1 503 555 0142".
_PHONE_CHARS = re.compile(r"^[+\d\s().\-/]+$")


def phone_prefixes(query: str, region: str = "US") -> list[str]:
    """The prefixes of ``Client.phone_normalized`` a number typed so far could be.

    A complete number normalises exactly as stored; a partial one (typed as you search) is
    prefixed the way ``normalize_phone`` would store the full number.
    """
    if not _PHONE_CHARS.match(query):
        return []
    digits = "".join(ch for ch in query if ch.isdigit())
    if len(digits) < 3:
        return []
    prefixes = {digits}  # numbers that did not parse are stored as their digits
    full = normalize_phone(query, region)
    if full:
        prefixes.add(full)
    if query.lstrip().startswith("+"):
        prefixes.add("+" + digits)
    elif (region or "US") == "US":
        prefixes.add(
            "+" + digits if digits.startswith("1") and len(digits) == 11 else "+1" + digits
        )
    return sorted(prefixes)


class ClientQuerySet(models.QuerySet["Client"]):
    def for_clinic(self, clinic: Clinic) -> ClientQuerySet:
        return self.filter(clinic=clinic)

    def current(self) -> ClientQuerySet:
        """Clients that have not been merged into another one."""
        return self.filter(merged_into__isnull=True)

    def search(self, query: str, *, clinic: Clinic) -> ClientQuerySet:
        """Clients of ``clinic`` matching what staff type: a name, an email, a phone in any
        format, a postcode, a PIMS id, a store ref or a pet's name (prefixes, any case).

        Each key is its own index lookup, the matching ids are put together in SQL: one query
        whatever the size of the clinic. Every word must match some key ("dana whit").
        """
        if not " ".join(query.split()):
            return self.filter(clinic=clinic)
        return self.filter(clinic=clinic, pk__in=self.search_ids(query, clinic=clinic))

    def search_ids(self, query: str, *, clinic: Clinic) -> models.QuerySet[Any]:
        """The ids of the current clients ``search`` finds, as an unordered subquery."""
        query = " ".join(query.split())
        base = Client.objects.filter(clinic=clinic, merged_into__isnull=True)
        region = clinic.region
        whole = [
            # Each exclude repeats a partial unique index's condition, so planners use it.
            base.filter(pims_id__in={query, query.upper()}).exclude(pims_id=""),
            base.filter(customer_ref__in={query, query.upper()}).exclude(customer_ref=""),
            base.filter(_prefix(F("postcode"), query.upper())),
        ]
        if "@" in query:
            whole.append(base.filter(_prefix(Lower("email"), query.lower())))
        phones = phone_prefixes(query, region)
        if phones:
            whole.extend(base.filter(_prefix(F("phone_normalized"), p)) for p in phones)
            return _union(whole)
        per_word = []
        for word in _name_words(query):
            per_word.append(
                [
                    base.filter(_prefix(Lower("last_name"), word)),
                    base.filter(_prefix(Lower("first_name"), word)),
                    base.filter(_prefix(Lower("email"), word)),
                    Patient.objects.filter(clinic=clinic)
                    .filter(_prefix(Lower("name"), word))
                    .values("client_id"),
                ]
            )
        if len(per_word) == 1:
            return _union(whole + per_word[0])
        every_word = _union(per_word[0])
        for arms in per_word[1:]:
            every_word = every_word.intersection(_union(arms)).order_by()
        return _union(whole).union(every_word).order_by()

    # Clients waiting for staff, or with a deceased pet, are few: the filters below start
    # from those few rows (an IN list the planner drives from) rather than testing every
    # client of the clinic. ``records.models.updates`` imports this module, so they import
    # ``ManualUpdate`` when they run.

    def with_pending_update(self) -> ClientQuerySet:
        from records.models.updates import ManualUpdate

        pending = ManualUpdate.objects.filter(status=ManualUpdate.Status.PENDING)
        return self.filter(pk__in=pending.values("client_id"))

    def possible_duplicates(self) -> ClientQuerySet:
        """Either side of a possible match waiting for staff."""
        from records.models.updates import ManualUpdate

        pending = ManualUpdate.objects.filter(
            status=ManualUpdate.Status.PENDING, kind=ManualUpdate.Kind.POSSIBLE_MATCH
        )
        return self.filter(pk__in=pending.values("client_id").union(pending.values("candidate_id")))

    def merged(self) -> ClientQuerySet:
        """Home-delivery customers linked to their PIMS record."""
        return self.exclude(customer_ref="").exclude(pims_id="")

    def home_delivery(self) -> ClientQuerySet:
        """Every home-delivery customer, linked to the PIMS or not."""
        return self.exclude(customer_ref="")

    def home_delivery_only(self) -> ClientQuerySet:
        return self.exclude(customer_ref="").filter(pims_id="")

    def pims_only(self) -> ClientQuerySet:
        return self.filter(customer_ref="").exclude(pims_id="")

    def inactive(self) -> ClientQuerySet:
        return self.filter(is_active=False)

    def with_deceased_pet(self) -> ClientQuerySet:
        return self.filter(pk__in=Patient.objects.filter(is_deceased=True).values("client_id"))


# Apostrophes as phones and word processors type them, for the one names are stored with.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def _name_words(query: str) -> list[str]:
    """The words of a search, as names are compared: any case, a curly apostrophe as a
    straight one ("O\u2019Brien"), a comma a separator ("Adams, Alex", as the list shows names)."""
    return query.translate(_APOSTROPHES).replace(",", " ").lower().split()


def _union(querysets: list[Any]) -> Any:
    """One subquery of client ids from several (clients, or pets' ``client_id``)."""
    ids = [(qs if qs._fields else qs.values("pk")).order_by() for qs in querysets]
    return ids[0].union(*ids[1:]).order_by() if len(ids) > 1 else ids[0]


class Client(models.Model):
    """A pet owner as the pharmacy knows them. Name and address here are the shipping ones."""

    # Indexed through the (clinic, …) composites below; a lone clinic index would only slow
    # the sync's bulk inserts.
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="clients", db_index=False
    )
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
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
    phone_normalized = models.CharField(
        max_length=20, blank=True, editable=False, help_text="The phone in E.164, for matching."
    )
    pims_id = models.CharField(
        "PIMS id", max_length=64, blank=True, help_text="This client's id in the clinic's PIMS."
    )
    pims_seen = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        encoder=DjangoJSONEncoder,
        help_text="The values last seen in the PIMS, to tell what changed there.",
    )
    pims_modified_at = models.DateTimeField(null=True, blank=True, editable=False)
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="absorbed",
        help_text="Set when this PIMS record was merged into a home-delivery customer.",
        db_index=False,  # see client_merged_into: only the few merged rows are indexed
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
            ),
            models.UniqueConstraint(
                fields=["clinic", "pims_id"],
                condition=~Q(pims_id=""),
                name="client_unique_pims_id_per_clinic",
            ),
        ]
        # Every index here is paid for on each row a first copy inserts (a big clinic's is
        # 100,000 clients), so each one serves a query that needs it. PIMS ids are looked up
        # through the partial unique constraint above: the lookups repeat its condition
        # (``exclude(pims_id="")``), which lets SQLite and PostgreSQL use it.
        indexes = [
            # All of a clinic's clients, merged copies included: the dashboard's counts (from
            # the index alone), the customer import's lookups, the admin's clinic filter.
            models.Index(fields=["clinic", "customer_ref"], name="client_clinic_customer_ref"),
            # The client list shows current clients (a merged PIMS copy is hidden): its sort
            # orders, counts and search prefixes (names and email in any case, postcode) each
            # have a partial index over exactly those rows, which covers the id scans.
            models.Index(
                # The trailing columns let the list's filters count and page from the index
                # alone (SQLite has no INCLUDE).
                fields=[
                    "clinic",
                    "last_name",
                    "first_name",
                    "id",
                    "customer_ref",
                    "pims_id",
                    "is_active",
                ],
                condition=Q(merged_into__isnull=True),
                name="client_current_name",
            ),
            models.Index(
                fields=["clinic", "postcode", "id"],
                condition=Q(merged_into__isnull=True),
                name="client_current_postcode",
            ),
            models.Index(
                fields=["clinic", "created_at", "id"],
                condition=Q(merged_into__isnull=True),
                name="client_current_created",
            ),
            models.Index(
                F("clinic"),
                Lower("last_name"),
                condition=Q(merged_into__isnull=True),
                name="client_current_lower_last",
            ),
            models.Index(
                F("clinic"),
                Lower("first_name"),
                condition=Q(merged_into__isnull=True),
                name="client_current_lower_first",
            ),
            models.Index(
                F("clinic"),
                Lower("email"),
                condition=Q(merged_into__isnull=True),
                name="client_current_lower_email",
            ),
            # Pet Owner Care looks up across every clinic: phone, email and postcode indexes
            # without the clinic in front. The typo-tolerant name indexes depend on the
            # database (trigram GIN on PostgreSQL), so they live in the care_lookup migration.
            models.Index(
                fields=["phone_normalized"],
                condition=Q(merged_into__isnull=True),
                name="care_client_phone",
            ),
            models.Index(
                Lower("email"), condition=Q(merged_into__isnull=True), name="care_client_email"
            ),
            models.Index(
                fields=["postcode"],
                condition=Q(merged_into__isnull=True),
                name="care_client_postcode",
            ),
            models.Index(
                fields=["merged_into"],
                condition=Q(merged_into__isnull=False),
                name="client_merged_into",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The normalised phone follows the phone wherever it is saved one by one; bulk writers
        # (the sync engine, imports) set it themselves.
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "phone" in update_fields:
            self.phone_normalized = normalize_phone(self.phone, self.country or "US")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "phone_normalized"}
        super().save(*args, **kwargs)

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

    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="patients", db_index=False
    )
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
    pims_id = models.CharField(
        "PIMS id", max_length=64, blank=True, help_text="This pet's id in the clinic's PIMS."
    )
    pims_seen = models.JSONField(
        default=dict, blank=True, editable=False, encoder=DjangoJSONEncoder
    )
    pims_modified_at = models.DateTimeField(null=True, blank=True, editable=False)
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
            models.UniqueConstraint(
                fields=["clinic", "pims_id"],
                condition=~Q(pims_id=""),
                name="patient_unique_pims_id_per_clinic",
            ),
        ]
        indexes = [
            models.Index(fields=["clinic", "name"]),
            # Search by pet name in any case; "has a deceased pet" (few rows, so partial).
            # On PostgreSQL the name search reads the owner (and the name its LIKE rechecks)
            # from the index alone: a common name matching a tenth of the pets costs no heap
            # visit (issue 18).
            models.Index(
                F("clinic"),
                Lower("name"),
                include=["client", "name"],
                name="patient_lower_name_cover",
            ),
            models.Index(
                fields=["clinic", "client"],
                condition=Q(is_deceased=True),
                name="patient_clinic_deceased",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class WeightRecord(models.Model):
    """One weighing of a pet: the history behind ``Patient.weight``."""

    class Source(models.TextChoices):
        PIMS = "pims", "PIMS"
        STAFF = "staff", "Clinic staff"

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="weights", db_index=False
    )
    weight = models.DecimalField(max_digits=7, decimal_places=2)
    unit = models.CharField(max_length=2, choices=WeightUnit.choices, default=WeightUnit.KG)
    recorded_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.PIMS)
    # Which run brought the weighing in (a log reference, not checked by the database: see
    # ``SyncRecordOutcome``).
    run = models.ForeignKey(
        "SyncRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        ordering = ["patient", "recorded_at", "id"]
        indexes = [models.Index(fields=["patient", "recorded_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(weight__gte=0), name="weight_record_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.weight} {self.unit}"


def changed_fields_error(obj: models.Model, names: Iterable[str]) -> str:
    """Validate only ``names`` on ``obj``; the errors as one sentence for a person, or "".

    A stray value elsewhere on the record (an unusual email from the PIMS) must not block a
    change to the shipping name or address.
    """
    wanted = set(names)
    try:
        obj.full_clean(exclude=[f.name for f in obj._meta.fields if f.attname not in wanted])
    except ValidationError as exc:
        return " ".join(
            f"{key.replace('_', ' ')}: {' '.join(errors)}"
            for key, errors in exc.message_dict.items()
        )
    return ""
