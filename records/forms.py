"""Forms for staff actions on the manual-update queue."""

from __future__ import annotations

from typing import Any

from django import forms


class ClientNameForm(forms.Form):
    first_name = forms.CharField(max_length=100, required=False)
    last_name = forms.CharField(max_length=100, required=False)


class ClientAddressForm(forms.Form):
    line1 = forms.CharField(label="Address line 1", max_length=200)
    line2 = forms.CharField(label="Address line 2", max_length=200, required=False)
    city = forms.CharField(max_length=100, required=False)
    state = forms.CharField(max_length=50, required=False)
    postcode = forms.CharField(max_length=20)
    country = forms.CharField(max_length=2, required=False)


class PetNameForm(forms.Form):
    name = forms.CharField(label="Pet name", max_length=100)


class RenameForm(forms.Form):
    """What every pet rename records: the same animal, and why (federal pharmacy rules)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # "New name", as every other form: no colon
        super().__init__(*args, **kwargs)

    same_pet = forms.BooleanField(
        label="This is the same pet; only its name has changed.",
        error_messages={
            "required": (
                "Confirm that this is the same pet: a different animal needs its own record."
            )
        },
    )
    reason = forms.CharField(
        label="Reason for the rename",
        max_length=300,
        help_text="Kept on the pet's name history, with who renamed it and when.",
        error_messages={"required": "Give the reason for the rename."},
    )


class PetRenameForm(RenameForm):
    name = forms.CharField(label="New name", max_length=100)

    field_order = ["name", "same_pet", "reason"]


EDIT_FORMS: dict[str, type[forms.Form]] = {
    "client_name": ClientNameForm,
    "client_address": ClientAddressForm,
    "pet_name": PetNameForm,
}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        help_text="Why the pharmacy keeps its own value (kept on the record).",
        error_messages={"required": "Say why the update is dismissed."},
    )
