"""A stored batch's client entries read by a compiled decoder (msgspec), for speed.

``vetsync.pims.agent`` defines the batch format: it reads any entry, however wrong, and says
what is wrong with it. Most entries of a big batch are regular (every field of its type, every
text tidy and within its length), and this module reads those into the very same records at a
fraction of the cost: msgspec splits the batch, types each entry and checks each text's length
in C, and Python is left with one check of all the entry's texts at once (``_tidy``) and
``agent``'s field readers, which cache the dates, timestamps and weights a batch repeats. An
entry it does not accept at once (a null where text was expected, stray white space, a bad
date, a patient twice…) is handed to ``agent.parse_client_entry``, so every quarantine reason
stays defined in one place.

Server side only: the agent's wheel carries ``agent.py``, not msgspec.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import msgspec

from vetsync.lib import json_input
from vetsync.pims import agent
from vetsync.pims.agent import Entry
from vetsync.pims.records import PimsAddress, PimsClient, PimsPatient

# Text of at most its field's length (``agent.MAX_LENGTHS``), checked as it is decoded.
_PimsId = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["pims_id"])]
_FirstName = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["first_name"])]
_LastName = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["last_name"])]
_Email = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["email"])]
_Phone = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["phone"])]
_Line1 = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["line1"])]
_Line2 = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["line2"])]
_City = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["city"])]
_State = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["state"])]
_Postcode = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["postcode"])]
_Country = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["country"])]
_Name = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["name"])]
_Species = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["species"])]
_Breed = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["breed"])]
_Sex = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["sex"])]
_Microchip = Annotated[str, msgspec.Meta(max_length=agent.MAX_LENGTHS["microchip"])]


class _Address(msgspec.Struct):
    line1: _Line1 = ""
    line2: _Line2 = ""
    city: _City = ""
    state: _State = ""
    postcode: _Postcode = ""
    country: _Country = ""


class _Patient(msgspec.Struct):
    pims_id: _PimsId = ""
    name: _Name = ""
    species: _Species = ""
    breed: _Breed = ""
    sex: _Sex = ""
    birth_date: str | None = None
    weight: int | float | str | None = None
    weight_unit: str | None = None
    deceased: bool | None = None
    deceased_on: str | None = None
    microchip: _Microchip = ""
    active: bool | None = None
    modified_at: str | None = None


class _Client(msgspec.Struct):
    pims_id: _PimsId = ""
    first_name: _FirstName = ""
    last_name: _LastName = ""
    email: _Email = ""
    phone: _Phone = ""
    address: _Address | None = None
    active: bool | None = None
    modified_at: str | None = None
    patients: list[_Patient] | None = None


class _Envelope(msgspec.Struct):
    """A stored batch: each client entry as its JSON text, the other members the sync reads
    as theirs (empty when absent)."""

    clients: list[msgspec.Raw]
    source: msgspec.Raw = msgspec.Raw()
    batch_id: msgspec.Raw = msgspec.Raw()
    sent_at: msgspec.Raw = msgspec.Raw()
    full: msgspec.Raw = msgspec.Raw()
    extract_id: msgspec.Raw = msgspec.Raw()
    part: msgspec.Raw = msgspec.Raw()
    parts: msgspec.Raw = msgspec.Raw()
    quarantined: msgspec.Raw = msgspec.Raw()


_MEMBERS = tuple(name for name in _Envelope.__struct_fields__ if name != "clients")
_NO_ADDRESS = _Address()
_DECODE_ENTRY = msgspec.json.Decoder(_Client).decode
_DECODE_ENVELOPE = msgspec.json.Decoder(_Envelope).decode


class _Irregular(Exception):
    """The entry needs ``agent``'s closer look."""


def read_batch(body: str | bytes) -> tuple[list[msgspec.Raw], dict[str, Any]] | None:
    """The batch's client entries (each as its JSON text, for ``read_entry``) and its other
    members the sync reads (the envelope's, and a pull's ``quarantined``), as ``json_input``
    reads them. None when the text is anything but regular JSON: the caller reads it the
    careful way, which says what is wrong."""
    try:
        envelope = _DECODE_ENVELOPE(body)
    except (msgspec.MsgspecError, RecursionError):  # too deep a nesting is RecursionError
        return None
    others: dict[str, Any] = {}
    for name in _MEMBERS:
        if text := bytes(getattr(envelope, name)):
            try:
                others[name] = json_input.loads(text)
            except json_input.JsonInputError:
                return None
    return envelope.clients, others


def read_entry(raw: msgspec.Raw) -> Entry:
    """One client entry with its patients, as ``agent.parse_client_entry`` reads it."""
    try:
        return _client(_DECODE_ENTRY(raw)), []
    except (msgspec.MsgspecError, RecursionError, agent.RecordError, _Irregular):
        return agent.parse_client_entry(entry_object(raw))


def entry_object(raw: msgspec.Raw) -> Any:
    """The entry as the JSON reader every other path uses reads it (None if it cannot)."""
    try:
        return json_input.loads(bytes(raw))
    except json_input.JsonInputError:
        return None


def _client(wire: _Client) -> PimsClient:
    address = wire.address or _NO_ADDRESS
    wires = wire.patients or ()
    texts = [
        wire.pims_id,
        wire.first_name,
        wire.last_name,
        wire.email,
        wire.phone,
        address.line1,
        address.line2,
        address.city,
        address.state,
        address.postcode,
        address.country,
    ]
    for pet in wires:
        texts += (pet.pims_id, pet.name, pet.species, pet.breed, pet.sex, pet.microchip)
    if not (wire.pims_id and (wire.first_name or wire.last_name) and _tidy(texts)):
        raise _Irregular
    email = wire.email
    return PimsClient(
        pims_id=wire.pims_id,
        first_name=wire.first_name,
        last_name=wire.last_name,
        email=email if (lowered := email.lower()) == email else lowered,
        phone=wire.phone,
        address=PimsAddress(
            line1=address.line1,
            line2=address.line2,
            city=sys.intern(address.city),
            state=sys.intern(address.state),
            postcode=sys.intern(address.postcode),
            country=sys.intern(address.country.upper()),
        ),
        active=True if wire.active is None else wire.active,
        modified_at=agent.read_datetime(wire.modified_at, "modified_at"),
        patients=_patients(wires) if wires else (),
    )


def _tidy(texts: list[str]) -> bool:
    """Whether every text of an entry is tidy: no white space but single spaces between
    words, no NUL, no lone surrogate (what ``agent`` keeps as it is), checked at once.

    Stricter than ``agent``, never looser: a character ``str.isprintable`` refuses (every
    white space but the space, NUL, surrogates, and a few invisible ones) or a text holding
    the separator beside a space sends the entry to ``agent``, which keeps what it should."""
    joined = "|".join(texts)
    return (
        joined.isprintable()
        and "  " not in joined
        and " |" not in joined
        and "| " not in joined
        and joined[:1] != " "
        and joined[-1:] != " "
    )


def _patients(wires: list[_Patient] | tuple[()]) -> tuple[PimsPatient, ...]:
    if len({wire.pims_id for wire in wires}) != len(wires):
        raise _Irregular  # a patient twice: agent quarantines the second
    return tuple(map(_patient, wires))


def _patient(wire: _Patient) -> PimsPatient:
    """A patient whose texts ``_client`` found tidy."""
    weight_unit = agent.WEIGHT_UNITS.get(wire.weight_unit or "kg")
    deceased = bool(wire.deceased)
    deceased_on = agent.read_date(wire.deceased_on, "deceased_on") if wire.deceased_on else None
    if weight_unit is None or not (wire.pims_id and wire.name) or (deceased_on and not deceased):
        raise _Irregular
    return PimsPatient(
        pims_id=wire.pims_id,
        name=wire.name,
        species=sys.intern(wire.species),
        breed=sys.intern(wire.breed),
        sex=sys.intern(wire.sex),
        birth_date=agent.read_date(wire.birth_date, "birth_date"),
        weight=agent.read_weight(wire.weight),
        weight_unit=weight_unit,
        deceased=deceased,
        deceased_on=deceased_on,
        microchip=wire.microchip,
        active=True if wire.active is None else wire.active,
        modified_at=agent.read_datetime(wire.modified_at, "modified_at"),
    )
