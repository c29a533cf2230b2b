"""Helpers of the prescription, Rx-request and order page tests: the page as a person reads
it, the pages' addresses, a filled-in prescription form."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from typing import Any

from django.urls import reverse
from django.utils import timezone

from prescriptions.models import Channel, Prescription, RxRequest
from prescriptions.services import rx_request_submit
from records.models import Patient
from tests.conftest import World
from tests.prescriptions.conftest import Catalogue


def text(response: Any) -> str:
    """The page as a person reads it: tags dropped, entities decoded, whitespace collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def url(name: str, world_clinic: Any, **kwargs: Any) -> str:
    return reverse(
        f"prescriptions:{name}", kwargs={"clinic_slug": world_clinic.clinic.slug, **kwargs}
    )


def rx_url(prescription: Prescription) -> str:
    return prescription.get_absolute_url()


def action_url(prescription: Prescription) -> str:
    return reverse(
        "prescriptions:prescription-action", args=[prescription.clinic.slug, prescription.pk]
    )


def new_rx_data(world: World, catalogue: Catalogue, **extra: str) -> dict[str, str]:
    data = {
        "vet": str(world.a.vet.pk),
        "channel": Channel.PORTAL,
        "consult_ref": "C-77",
        "expires_on": (timezone.localdate() + dt.timedelta(days=180)).isoformat(),
        "notes": "",
        "items-TOTAL_FORMS": "5",
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "5",
        "items-0-product": str(catalogue.carprofen.pk),
        "items-0-quantity": "60",
        "items-0-refills": "2",
        "items-0-instructions": "One tablet twice daily with food",
    }
    for i in range(1, 5):
        data.update({f"items-{i}-quantity": "30", f"items-{i}-refills": "0"})
    data.update(extra)
    return data


def request_for(world: World, pet: Patient, catalogue: Catalogue, **kw: Any) -> RxRequest:
    return rx_request_submit(
        clinic=world.a.clinic,
        patient=pet,
        product=kw.pop("product", catalogue.apoquel),
        quantity=kw.pop("quantity", 30),
        owner_note=kw.pop("owner_note", "He scratches all night"),
    )
