"""The agent batch format (v1, see PIMS.md): validation into normalised records.

On-premise agents (SyncVet, VetData, IDEXX DataPoint, VetSuccess) post these batches; the
same file feeds ``manage.py ingest_batch`` and, serialised back with ``client_to_entry``, the
ezyVet pulls. A record that fails validation becomes a ``QuarantinedRecord`` with a reason a
person can act on; the rest of the batch goes on. Pure: no Django, no I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from vetsync.pims.records import (
    PimsAddress,
    PimsClient,
    PimsPatient,
    QuarantinedRecord,
    Source,
    WeightUnit,
)

# Longest value VetSync stores per field; a longer one is quarantined, never truncated.
MAX_LENGTHS = {
    "pims_id": 64,
    "first_name": 100,
    "last_name": 100,
    "email": 254,
    "phone": 40,
    "line1": 200,
    "line2": 200,
    "city": 100,
    "state": 50,
    "postcode": 20,
    "country": 2,
    "name": 100,
    "species": 60,
    "breed": 100,
    "sex": 40,
    "microchip": 30,
}
MAX_WEIGHT = Decimal("99999.99")
# Already tidy (no stray white space) and free of NUL characters: most values are, and one
# match tells it (splitting and re-joining each value is the slow part of a big batch).
_CLEAN = re.compile(r"(?:[^\s\x00\ud800-\udfff]+(?: [^\s\x00\ud800-\udfff]+)*)?")
# An unpaired UTF-16 surrogate (a "\ud800" escape in JSON): no database or UTF-8 file holds
# it. Here rather than imported: the agent's wheel ships this module alone.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    return bool(_LONE_SURROGATE.search(text))


WEIGHT_UNITS = {unit.value: unit for unit in WeightUnit}
# datetime.UTC is Python 3.11+; this module also runs in the agent's wheel on 3.10.
_UTC = dt.timezone.utc


# One client entry as read: the client (None when quarantined) and what was quarantined of it.
Entry = tuple[PimsClient | None, list[QuarantinedRecord]]


class BatchError(ValueError):
    """The batch as a whole cannot be read (not a record-level problem)."""


class RecordError(ValueError):
    """One record is invalid; the message is the quarantine reason shown to staff."""


@dataclass(frozen=True, slots=True)
class BatchHeader:
    source: Source
    batch_id: str
    sent_at: dt.datetime | None
    full: bool
    client_count: int
    # A full extract in several batches (PIMS.md): all three, or none.
    extract_id: str = ""
    part: int = 0
    parts: int = 0


MAX_EXTRACT_PARTS = 100_000


def _extract_fields(payload: Mapping[str, Any], full: object) -> tuple[str, int, int, list[str]]:
    """``extract_id``, ``part`` and ``parts`` of a multi-part full extract, checked."""
    keys = ("extract_id", "part", "parts")
    present = [key for key in keys if payload.get(key) not in (None, "")]
    if not present:
        return "", 0, 0, []
    if len(present) < 3 or full is not True:
        return "", 0, 0, ['extract_id, part and parts go together, on a batch with "full": true.']
    extract_id, part, parts = (payload[key] for key in keys)
    problems = []
    if not isinstance(extract_id, str) or not extract_id.strip() or len(extract_id) > 100:
        problems.append("extract_id must be a non-empty string of at most 100 characters.")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (part, parts)) or not (
        1 <= part <= parts <= MAX_EXTRACT_PARTS
    ):
        problems.append(
            "part and parts must be whole numbers with 1 <= part <= parts "
            f"(got {part!r} of {parts!r})."
        )
    if problems:
        return "", 0, 0, problems
    return extract_id.strip(), part, parts, []


def parse_header(payload: object) -> BatchHeader:
    """Check the envelope of a batch; raise ``BatchError`` with every problem found."""
    if not isinstance(payload, Mapping):
        raise BatchError("The batch must be a JSON object.")
    problems = []
    source = payload.get("source")
    if not isinstance(source, str) or source not in {s.value for s in Source}:
        problems.append(
            f"source must be one of {', '.join(s.value for s in Source)} (got {source!r})."
        )
    batch_id = payload.get("batch_id")
    if not isinstance(batch_id, str) or not batch_id.strip():
        problems.append("batch_id is required and must be a non-empty string.")
    elif len(batch_id) > 100:
        problems.append("batch_id must be at most 100 characters.")
    elif has_lone_surrogate(batch_id) or "\x00" in batch_id:
        problems.append("batch_id contains a character that is not text (a lone surrogate or NUL).")
    clients = payload.get("clients")
    if not isinstance(clients, list):
        problems.append("clients must be a list.")
    full = payload.get("full", False)
    if not isinstance(full, bool):
        problems.append("full must be true or false.")
    sent_at = None
    try:
        sent_at = read_datetime(payload.get("sent_at"), "sent_at")
    except RecordError as exc:
        problems.append(str(exc))
    extract_id, part, parts, extract_problems = _extract_fields(payload, full)
    problems += extract_problems
    if problems:
        raise BatchError(" ".join(problems))
    assert isinstance(clients, list)
    assert isinstance(batch_id, str)
    return BatchHeader(
        source=Source(str(source)),
        batch_id=batch_id.strip(),
        sent_at=sent_at,
        full=bool(full),
        client_count=len(clients),
        extract_id=extract_id,
        part=part,
        parts=parts,
    )


def parse_client_entry(
    raw: object,
) -> Entry:
    """One client entry with its patients; whatever is wrong with it, never an exception."""
    try:
        return _parse_client_entry(raw)
    except Exception as exc:  # a shape no rule foresaw: quarantine it, never stop the batch
        raw_dict = dict(raw) if isinstance(raw, Mapping) else {}
        pims_id = raw_dict.get("pims_id")
        return None, [
            QuarantinedRecord(
                "client",
                pims_id if isinstance(pims_id, str) else "",
                f"The client entry could not be read ({type(exc).__name__}: {exc}).",
                raw_dict,
            )
        ]


def _parse_client_entry(
    raw: object,
) -> Entry:
    """One client entry with its patients.

    A bad client quarantines the client and its patients (their owner is unknown); a bad
    patient quarantines only that patient.
    """
    if type(raw) is not dict and not isinstance(raw, Mapping):  # abc checks are slow
        return None, [QuarantinedRecord("client", "", "The client entry is not an object.", {})]
    raw_dict = raw if isinstance(raw, dict) else dict(raw)
    client_pims_id = raw_dict.get("pims_id")
    client_pims_id = client_pims_id.strip() if isinstance(client_pims_id, str) else ""
    try:
        fields = _client_fields(raw_dict)
    except RecordError as exc:
        quarantined = [QuarantinedRecord("client", client_pims_id, str(exc), raw_dict)]
        owned = raw_dict.get("patients")
        for patient in owned if isinstance(owned, list) else []:
            pid = patient.get("pims_id", "") if isinstance(patient, Mapping) else ""
            quarantined.append(
                QuarantinedRecord(
                    "patient",
                    pid if isinstance(pid, str) else "",
                    f"Owner {client_pims_id or '(no id)'} was quarantined: {exc}",
                    raw_dict,
                    client_pims_id,
                )
            )
        return None, quarantined

    raw_patients = raw_dict.get("patients", [])
    if raw_patients is None:
        raw_patients = []
    if not isinstance(raw_patients, list):
        return PimsClient(**fields), [
            QuarantinedRecord(
                "patient", "", "patients must be a list.", raw_dict, fields["pims_id"]
            )
        ]
    patients: list[PimsPatient] = []
    quarantined = []
    seen: set[str] = set()
    for raw_patient in raw_patients:
        try:
            patient = _patient(raw_patient)
            if patient.pims_id in seen:
                raise RecordError(f"Patient {patient.pims_id} appears twice for this client.")
            seen.add(patient.pims_id)
            patients.append(patient)
        except RecordError as exc:
            pid = raw_patient.get("pims_id", "") if isinstance(raw_patient, Mapping) else ""
            quarantined.append(
                QuarantinedRecord(
                    "patient",
                    pid if isinstance(pid, str) else "",
                    str(exc),
                    raw_dict,
                    fields["pims_id"],
                )
            )
    return PimsClient(**fields, patients=tuple(patients)), quarantined


def client_to_entry(client: PimsClient) -> dict[str, Any]:
    """A normalised client back in the batch format (ezyVet pulls are stored as batches)."""
    return {
        "pims_id": client.pims_id,
        "first_name": client.first_name,
        "last_name": client.last_name,
        "email": client.email,
        "phone": client.phone,
        "address": {
            "line1": client.address.line1,
            "line2": client.address.line2,
            "city": client.address.city,
            "state": client.address.state,
            "postcode": client.address.postcode,
            "country": client.address.country,
        },
        "active": client.active,
        "modified_at": _iso(client.modified_at),
        "patients": [
            {
                "pims_id": p.pims_id,
                "name": p.name,
                "species": p.species,
                "breed": p.breed,
                "sex": p.sex,
                "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                "weight": float(p.weight) if p.weight is not None else None,
                "weight_unit": p.weight_unit.value,
                "deceased": p.deceased,
                "deceased_on": p.deceased_on.isoformat() if p.deceased_on else None,
                "microchip": p.microchip,
                "active": p.active,
                "modified_at": _iso(p.modified_at),
            }
            for p in client.patients
        ],
    }


# --- field parsers -------------------------------------------------------------------------


_CLIENT_TEXTS = ("pims_id", "first_name", "last_name", "email", "phone")
_ADDRESS_TEXTS = ("line1", "line2", "city", "state", "postcode", "country")
_PATIENT_TEXTS = ("pims_id", "name", "species", "breed", "sex", "microchip")
_LIMITS: dict[tuple[str, ...], tuple[int, ...]] = {
    keys: tuple(MAX_LENGTHS[key] for key in keys)
    for keys in (_CLIENT_TEXTS, _ADDRESS_TEXTS, _PATIENT_TEXTS)
}
# Tidy values joined by a separator no tidy value holds (\x1f is white space to ``re``):
# one match checks a record's text fields at once.
_CLEAN_FIELDS = re.compile(
    r"(?:[^\s\x00\ud800-\udfff]+(?: [^\s\x00\ud800-\udfff]+)*)?"
    r"(?:\x1f(?:[^\s\x00\ud800-\udfff]+(?: [^\s\x00\ud800-\udfff]+)*)?)*"
)


_ONLY_TEXT: set[type] = {str}


def _tidy_texts(raw: Mapping[str, Any], keys: tuple[str, ...]) -> list[str] | None:
    """The values of ``keys`` when every one is tidy text within its length (a missing one
    is ""); None when any needs ``_text``'s closer look (which then says what is wrong).

    Every step runs over all the values at once (a first copy reads millions of them)."""
    found: list[Any] = list(map(raw.get, keys))
    if None in found:
        found = ["" if value is None else value for value in found]
    if set(map(type, found)) != _ONLY_TEXT:
        return None
    values: list[str] = found
    joined = "\x1f".join(values)
    # A value holding the separator itself (white space to ``_text``) would read as two.
    if joined.count("\x1f") != len(values) - 1 or not _CLEAN_FIELDS.fullmatch(joined):
        return None
    if any(map(operator.gt, map(len, values), _LIMITS[keys])):
        return None
    return values


def _client_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A client's own fields, checked (its patients are read after it)."""
    address = raw.get("address") or {}
    if not isinstance(address, Mapping):
        raise RecordError("address must be an object.")
    texts = _tidy_texts(raw, _CLIENT_TEXTS)
    lines = _tidy_texts(address, _ADDRESS_TEXTS) if texts else None
    if texts is None or lines is None or not texts[0]:
        texts, lines = _client_texts(raw, address)  # the slow way, which says what is wrong
    pims_id, first_name, last_name, email, phone = texts
    if not first_name and not last_name:
        # A business (a kennel, a shelter) has only one name; a client needs at least one.
        raise RecordError("first_name and last_name are both missing.")
    line1, line2, city, state, postcode, country = lines
    return {
        "pims_id": pims_id,
        "first_name": first_name,
        "last_name": last_name,
        "email": email if (lowered := email.lower()) == email else lowered,
        "phone": phone,
        # The values a batch repeats are shared, not held once per record.
        "address": PimsAddress(
            line1=line1,
            line2=line2,
            city=sys.intern(city),
            state=sys.intern(state),
            postcode=sys.intern(postcode),
            country=sys.intern(country.upper()),
        ),
        "active": _bool(raw, "active", default=True),
        "modified_at": read_datetime(raw.get("modified_at"), "modified_at"),
    }


def _client_texts(
    raw: Mapping[str, Any], address: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """A client's text fields one by one, in the order their problems are reported."""
    texts = [_text(raw, "pims_id", required=True), _text(raw, "first_name")]
    texts.append(_text(raw, "last_name"))
    if not texts[1] and not texts[2]:
        raise RecordError("first_name and last_name are both missing.")
    texts += [_text(raw, "email"), _text(raw, "phone")]
    return texts, [_text(address, key) for key in _ADDRESS_TEXTS]


def _patient(raw: object) -> PimsPatient:
    if type(raw) is not dict and not isinstance(raw, Mapping):  # abc checks are slow
        raise RecordError("The patient entry is not an object.")
    unit = raw.get("weight_unit") or "kg"
    weight_unit = WEIGHT_UNITS.get(unit) if isinstance(unit, str) else None
    if weight_unit is None:
        raise RecordError(f"weight_unit must be kg or lb (got {unit!r}).")
    weight = read_weight(raw.get("weight"))
    deceased = _bool(raw, "deceased", default=False)
    deceased_on = read_date(raw.get("deceased_on"), "deceased_on")
    if deceased_on is not None and not deceased:
        raise RecordError("deceased_on is set but deceased is false.")
    texts = _tidy_texts(raw, _PATIENT_TEXTS)
    if texts is None or not texts[0] or not texts[1]:  # the slow way, which says what is wrong
        texts = [_text(raw, key, required=key in ("pims_id", "name")) for key in _PATIENT_TEXTS[:5]]
        birth_date = read_date(raw.get("birth_date"), "birth_date")
        texts.append(_text(raw, "microchip"))
    else:
        birth_date = read_date(raw.get("birth_date"), "birth_date")
    pims_id, name, species, breed, sex, microchip = texts
    return PimsPatient(
        pims_id=pims_id,
        name=name,
        species=sys.intern(species),
        breed=sys.intern(breed),
        sex=sys.intern(sex),
        birth_date=birth_date,
        weight=weight,
        weight_unit=weight_unit,
        deceased=deceased,
        deceased_on=deceased_on,
        microchip=microchip,
        active=_bool(raw, "active", default=True),
        modified_at=read_datetime(raw.get("modified_at"), "modified_at"),
    )


def _text(raw: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = raw.get(key)
    if value is None:
        value = ""
    if type(value) is not str or not _CLEAN.fullmatch(value):
        value = _untidy_text(value, key)
    if required and not value:
        raise RecordError(f"{key} is missing.")
    limit = MAX_LENGTHS.get(key)
    if limit is not None and len(value) > limit:
        raise RecordError(f"{key} is longer than {limit} characters ({len(value)}).")
    return value


def _untidy_text(value: object, key: str) -> str:
    """The slow path of ``_text``: a number for an id, stray white space, or no text at all."""
    if isinstance(value, int | float) and not isinstance(value, bool) and key == "pims_id":
        value = str(value)  # agents sometimes send numeric ids; they are still ids
    if not isinstance(value, str):
        raise RecordError(f"{key} must be text (got {type(value).__name__}).")
    value = " ".join(value.split())
    if "\x00" in value:
        raise RecordError(f"{key} contains a NUL character.")
    if has_lone_surrogate(value):
        raise RecordError(f"{key} contains an unpaired UTF-16 surrogate (not a character).")
    return value


def _bool(raw: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RecordError(f"{key} must be true or false (got {value!r}).")
    return value


def read_weight(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if type(value) in (float, int, str):
        return _number_weight(value)  # type: ignore[arg-type]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(f"weight must be a number (got {value!r}).")
    return _number_weight(value)


# Weights repeat (11.4 kg…): each is read once, and every pet of that weight shares it.
@functools.lru_cache(maxsize=4096, typed=True)
def _number_weight(value: float | str) -> Decimal:
    try:
        weight = Decimal(str(value))
        if not weight.is_finite():
            raise RecordError(f"weight must be a finite number (got {value!r}).")
        weight = weight.quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise RecordError(f"weight must be a number (got {value!r}).") from exc
    if weight < 0:
        raise RecordError(f"weight cannot be negative (got {value!r}).")
    if weight > MAX_WEIGHT:
        raise RecordError(f"weight is implausibly large (got {value!r}).")
    return weight


def read_date(value: object, key: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a date like 2019-04-02 (got {value!r}).")
    try:
        return _parse_date(value)
    except ValueError as exc:
        raise RecordError(f"{key} is not a date like 2019-04-02 (got {value!r}).") from exc


def read_datetime(value: object, key: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a timestamp like 2026-11-23T18:04:00Z (got {value!r}).")
    try:
        return _parse_datetime(value)
    except ValueError as exc:
        raise RecordError(
            f"{key} is not a timestamp like 2026-11-23T18:04:00Z (got {value!r})."
        ) from exc


# A batch repeats the same few timestamps and dates many thousand times.
@functools.lru_cache(maxsize=8192)
def _parse_date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


@functools.lru_cache(maxsize=8192)
def _parse_datetime(value: str) -> dt.datetime:
    if value[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat (the agent's wheel) lacks "Z"
        value = value[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(_UTC).isoformat().replace("+00:00", "Z") if value else None
