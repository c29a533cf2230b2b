"""Forms for the clinic's prescription, Rx-request and order pages.

They check what a form can (types, required fields, choices scoped to the clinic and the pet);
the business rules stay in ``prescriptions/services.py``, whose ``PrescriptionError`` the view
puts on the form.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from clinics.models import Clinic, Vet
from prescriptions.models import (
    OPEN_ITEM_STATUSES,
    Channel,
    ItemStatus,
    Prescription,
    PrescriptionItem,
    Product,
    ReturnEnd,
    ReturnReason,
)
from prescriptions.rules import CANCELS, DECLINES
from prescriptions.services import DEFAULT_VALIDITY, ItemSpec, LineSpec
from records.models import Patient

PRESCRIPTION_ITEM_ROWS = 5
ORDER_LINE_ROWS = 5


NOTES_MAX_LENGTH = 2000
# The most a quantity column holds (a PositiveIntegerField is a 32-bit integer on PostgreSQL):
# a bigger number typed in is a form error, not a database error after the form said yes.
QUANTITY_MAX = 2_147_483_647


class Form(forms.Form):
    """Labels without Django's trailing colon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class ProductChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        extra = " · compounded" if obj.is_compounded else ""
        return f"{obj.name} ({obj.sku}, {obj.get_kind_display()}{extra})"


class VetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj}{f' · licence {obj.licence_number}' if obj.licence_number else ''}"


# --- a prescription ------------------------------------------------------------------------


class SubmissionForm(Form):
    """A form whose POST creates something: a second click (or a resent POST) carries the same
    id, so the service returns what the first one made instead of making it twice."""

    submission_id = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4, required=False)


def consult_field(consults: list[tuple[str, str]]) -> forms.ChoiceField:
    """On ezyVet the vet picks one of the patient's consults (the guide: "select a clinical
    record"); a posted id not on the list is refused."""
    return forms.ChoiceField(
        label="Clinical record (consult)",
        choices=[("", "— no consult —"), *consults],
        required=False,
        help_text="Optional: the pet's consult in ezyVet this prescription belongs to.",
        error_messages={"invalid_choice": "Pick one of this pet's consults in ezyVet (or none)."},
    )


class PrescriptionForm(SubmissionForm):
    """The prescription's header; its items come from ``ItemFormSet``."""

    vet = VetChoiceField(
        label="Prescribing vet",
        queryset=Vet.objects.none(),
        empty_label="— choose the vet —",
        help_text="The real vet who prescribes: the PIMS records them as the prescriber.",
        error_messages={"required": "Choose the prescribing vet."},
    )
    channel = forms.ChoiceField(
        label="Filled through",
        choices=Channel.choices,
        initial=Channel.PORTAL,
        help_text="eConnect orders are never written back to the PIMS.",
    )
    consult_ref = forms.CharField(
        label="Clinical record (consult)",
        max_length=40,
        required=False,
        help_text="Optional: the consult in the PIMS this prescription belongs to.",
    )
    expires_on = forms.DateField(
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="At most a year from today.",
        error_messages={"required": "Give the expiry date.", "invalid": "Enter a valid date."},
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=NOTES_MAX_LENGTH,
        help_text=f"For the clinic and the pharmacy; not sent to the owner. At most "
        f"{NOTES_MAX_LENGTH:,} characters.",
    )
    approve = forms.BooleanField(
        label="Approve now (I am the prescribing vet)",
        required=False,
        help_text="Leave unticked to save a draft for a vet to approve.",
    )

    def __init__(
        self,
        *args: Any,
        clinic: Clinic,
        can_approve: bool,
        consults: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if consults is not None:
            self.fields["consult_ref"] = consult_field(consults)
        vet_field = self.fields["vet"]
        assert isinstance(vet_field, forms.ModelChoiceField)
        vets = Vet.objects.filter(clinic=clinic, is_active=True).order_by("last_name", "first_name")
        vet_field.queryset = vets
        if "vet" not in self.initial:
            only = list(vets[:2])
            if len(only) == 1:  # a one-vet clinic: nothing to choose
                self.initial["vet"] = only[0].pk
        self.fields["expires_on"].initial = timezone.localdate() + DEFAULT_VALIDITY
        if not can_approve:
            # Staff draft, a vet approves: the option is not offered (the service refuses too).
            del self.fields["approve"]


class ItemForm(Form):
    product = ProductChoiceField(
        queryset=Product.objects.none(),
        empty_label="— choose a product —",
        error_messages={"required": "Choose the product for this row."},
    )
    quantity = forms.IntegerField(
        label="Quantity per fill",
        min_value=1,
        max_value=QUANTITY_MAX,
        initial=30,
        widget=forms.NumberInput(attrs={"min": 1}),
    )
    refills = forms.IntegerField(
        min_value=0,
        max_value=99,
        initial=0,
        help_text="Fills after the first.",
        widget=forms.NumberInput(attrs={"min": 0, "max": 99}),
    )
    instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Give the instructions for this item."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        product_field = self.fields["product"]
        assert isinstance(product_field, forms.ModelChoiceField)
        product_field.queryset = Product.objects.active()

    def spec(self) -> ItemSpec:
        data = self.cleaned_data
        return ItemSpec(
            product=data["product"],
            quantity=data["quantity"],
            refills=data["refills"],
            instructions=data["instructions"],
        )


class BaseItemFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        if not self.specs():
            raise forms.ValidationError("Add at least one item: choose a product for a row.")

    def specs(self) -> list[ItemSpec]:
        return [form.spec() for form in self.forms if form.has_changed() and form.cleaned_data]


ItemFormSet = cast(
    type[BaseItemFormSet],
    forms.formset_factory(
        ItemForm,
        formset=BaseItemFormSet,
        extra=PRESCRIPTION_ITEM_ROWS,
        max_num=PRESCRIPTION_ITEM_ROWS,
        validate_max=True,
    ),
)


# --- actions on a prescription ---------------------------------------------------------------


class ReasonForm(Form):
    reason = forms.CharField(
        max_length=300, error_messages={"required": "Give the reason: it is kept on record."}
    )


def end_choices(item: PrescriptionItem) -> list[tuple[str, str]]:
    """The end statuses ezyVet allows for an item: declined before any dispense (Pending),
    cancelled after one (Current); none once it has ended."""
    if item.status == ItemStatus.PENDING:
        allowed = DECLINES
    elif item.status == ItemStatus.CURRENT:
        allowed = CANCELS
    else:
        return []
    return [(s.value, s.label) for s in ItemStatus if s in allowed]


class EndItemsForm(Form):
    """One select per open item (``end-<item id>``): leave it empty to keep the item open."""

    reason = forms.CharField(
        max_length=300, error_messages={"required": "Say why the items are ended."}
    )

    def __init__(self, *args: Any, items: list[PrescriptionItem], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items = {item.pk: item for item in items if item.status in OPEN_ITEM_STATUSES}
        for item in self.items.values():
            self.fields[f"end-{item.pk}"] = forms.ChoiceField(
                label=str(item.product),
                choices=[("", "Keep open"), *end_choices(item)],
                required=False,
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not any(data.get(f"end-{pk}") for pk in self.items):
            raise forms.ValidationError("Choose how at least one item ends.")
        return data

    def chosen(self) -> list[tuple[PrescriptionItem, str]]:
        """(item, end status) for each item given an end."""
        return [
            (item, status)
            for pk, item in self.items.items()
            if (status := self.cleaned_data.get(f"end-{pk}"))
        ]


class AutoshipForm(Form):
    item = forms.IntegerField(widget=forms.HiddenInput)
    interval_days = forms.IntegerField(
        label="Every (days)",
        min_value=7,
        max_value=365,
        initial=30,
        error_messages={"min_value": "Autoship repeats every 7 days at the most often."},
    )
    quantity = forms.IntegerField(
        min_value=1,
        max_value=QUANTITY_MAX,
        required=False,
        help_text="Leave empty for the item's quantity per fill.",
    )
    first_on = forms.DateField(
        label="First order on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty to place the first order today.",
    )

    def clean_first_on(self) -> dt.date | None:
        first_on = self.cleaned_data.get("first_on")
        if first_on is not None and first_on < timezone.localdate():
            raise forms.ValidationError("The first order cannot be in the past.")
        return first_on


# --- Rx requests -----------------------------------------------------------------------------


class RxApproveForm(Form):
    """Approve as asked (product and quantity empty) or with changes."""

    product = ProductChoiceField(
        queryset=Product.objects.none(), required=False, empty_label="— as requested —"
    )
    quantity = forms.IntegerField(
        label="Quantity per fill", min_value=1, max_value=QUANTITY_MAX, required=False
    )
    refills = forms.IntegerField(
        min_value=0, max_value=99, initial=0, help_text="Fills after the first."
    )
    instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Give the instructions: they go on the label."},
    )
    owner_message = forms.CharField(
        label="Note to the owner",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="Optional; emailed to the owner with the decision, if they have an email.",
    )

    def __init__(
        self, *args: Any, consults: list[tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        product_field = self.fields["product"]
        assert isinstance(product_field, forms.ModelChoiceField)
        product_field.queryset = Product.objects.active()
        if consults is not None:
            self.fields["consult_ref"] = consult_field(consults)


class RxDeclineForm(Form):
    reason = forms.CharField(
        label="Reason for declining",
        max_length=300,
        help_text="Kept on the request for the clinic.",
        error_messages={"required": "Give the reason for declining."},
    )
    owner_message = forms.CharField(
        label="Note to the owner",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text=(
            "Emailed to the owner with the decision, if they have an email, e.g. “Please book"
            " a check-up first.”"
        ),
    )


class RxNoteForm(Form):
    text = forms.CharField(
        label="Internal note",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="For the clinic only; never sent to the owner.",
        error_messages={"required": "The note is empty."},
    )


# --- orders ----------------------------------------------------------------------------------


def open_items_for(patient: Patient) -> QuerySet[PrescriptionItem]:
    """The pet's items an order can fill: approved (and paid, for a request), open, not
    expired. Those with nothing left are dropped by the caller (``remaining`` is computed)."""
    return (
        PrescriptionItem.objects.filter(
            prescription__patient=patient,
            prescription__clinic_id=patient.clinic_id,
            prescription__state=Prescription.State.APPROVED,
            prescription__expires_on__gte=timezone.localdate(),
            status__in=OPEN_ITEM_STATUSES,
        )
        .exclude(prescription__needs_payment=True, prescription__paid_at__isnull=True)
        .select_related("prescription", "product")
        .order_by("prescription__pk", "pk")
    )


def item_label(item: PrescriptionItem) -> str:
    return f"{item.prescription.number} · {item.product.name} — {item.remaining} left"


class OrderForm(SubmissionForm):
    channel = forms.ChoiceField(
        label="Ordered through",
        choices=Channel.choices,
        initial=Channel.PORTAL,
        help_text="eConnect orders are never written back to the PIMS.",
    )


class LineForm(Form):
    prescription_item = forms.ChoiceField(
        label="Fills prescription item",
        required=False,
        help_text="Empty for an OTC product sold without a prescription.",
    )
    product = ProductChoiceField(
        queryset=Product.objects.none(),
        required=False,
        empty_label="— the prescription item's product —",
        help_text="Empty: the product of the chosen prescription item.",
    )
    quantity = forms.IntegerField(
        min_value=1,
        max_value=QUANTITY_MAX,
        widget=forms.NumberInput(attrs={"min": 1}),
        error_messages={"required": "Give the quantity for this line."},
    )

    def __init__(self, *args: Any, items: list[PrescriptionItem], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items = {str(item.pk): item for item in items}
        field = self.fields["prescription_item"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            ("", "— none (OTC, no prescription) —"),
            *((pk, item_label(item)) for pk, item in self.items.items()),
        ]
        product_field = self.fields["product"]
        assert isinstance(product_field, forms.ModelChoiceField)
        product_field.queryset = Product.objects.active()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        item = self.items.get(data.get("prescription_item") or "")
        product = data.get("product")
        if item is None and product is None and not self.errors:
            raise forms.ValidationError("Choose a product or the prescription item it fills.")
        if item is not None and product is not None and product.pk != item.product_id:
            raise forms.ValidationError(
                f"{item.prescription.number} prescribes {item.product}, not {product}."
            )
        data["item"] = item
        return data

    def spec(self) -> LineSpec:
        item = self.cleaned_data["item"]
        return LineSpec(
            product=item.product if item else self.cleaned_data["product"],
            quantity=self.cleaned_data["quantity"],
            prescription_item=item,
        )


class BaseLineFormSet(forms.BaseFormSet):
    def __init__(self, *args: Any, items: list[PrescriptionItem], **kwargs: Any) -> None:
        self.items = items
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "items": self.items}

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        if not self.specs():
            raise forms.ValidationError("Add at least one line.")

    def specs(self) -> list[LineSpec]:
        return [form.spec() for form in self.forms if form.has_changed() and form.cleaned_data]


LineFormSet = cast(
    type[BaseLineFormSet],
    forms.formset_factory(
        LineForm,
        formset=BaseLineFormSet,
        extra=ORDER_LINE_ROWS,
        max_num=ORDER_LINE_ROWS,
        validate_max=True,
    ),
)


class ShipForm(Form):
    shipped_on = forms.DateField(
        label="Shipped on",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"required": "Give the ship date.", "invalid": "Enter a valid date."},
    )
    carrier = forms.CharField(max_length=60, required=False, help_text="e.g. UPS, USPS, FedEx.")
    tracking_number = forms.CharField(label="Tracking number", max_length=80, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shipped_on"].initial = timezone.localdate()


class ReturnForm(Form):
    """A shipment came back: why, when, how much of each line, and what becomes of the
    prescriptions it filled. The quantity fields are one per line (``qty-<line id>``)."""

    reason = forms.ChoiceField(
        label="Why did it come back?",
        choices=[("", "— choose —"), *ReturnReason.choices],
        error_messages={"required": "Say why the shipment came back."},
    )
    returned_on = forms.DateField(
        label="Came back on",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={
            "required": "Give the date it came back.",
            "invalid": "Enter a valid date.",
        },
    )
    end_as = forms.ChoiceField(
        label="The prescription",
        choices=ReturnEnd.choices,
        required=False,
        help_text="Stopping it ends its items here and in the PIMS; kept open, the returned "
        "quantity can be filled again and nothing is sent to ezyVet.",
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=1000
    )

    def __init__(self, *args: Any, lines: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = lines
        self.fields["returned_on"].initial = timezone.localdate()
        for line in lines:
            self.fields[f"qty-{line.pk}"] = forms.IntegerField(
                label=f"{line.product} (of {line.quantity})",
                min_value=0,
                max_value=line.quantity,
                initial=line.quantity,
                widget=forms.NumberInput(attrs={"min": 0, "max": line.quantity}),
            )

    def quantity_fields(self) -> list[forms.BoundField]:
        return [self[f"qty-{line.pk}"] for line in self.lines]

    def quantities(self) -> dict[int, int]:
        return {line.pk: self.cleaned_data[f"qty-{line.pk}"] for line in self.lines}
