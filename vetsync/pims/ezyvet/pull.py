"""A pull of an ezyVet site's clients and patients, and the parsing of ezyVet's records into
``vetsync.pims.records`` types: a record that does not parse is quarantined, not fatal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from vetsync.lib.numbers import is_ascii_digits
from vetsync.pims.ezyvet.transport import PAGE_LIMIT
from vetsync.pims.ezyvet.wire import _epoch_datetime, _flag, _id_order, _text
from vetsync.pims.records import (
    PimsAddress,
    PimsBatch,
    PimsClient,
    PimsPatient,
    QuarantinedRecord,
    Source,
    WeightUnit,
)

if TYPE_CHECKING:
    from vetsync.pims.ezyvet.client import EzyVetClient


class EzyVetPull:
    """One pull. Iterate for ``PimsBatch`` pages (one per 200 clients); when iteration
    completes, ``watermark`` is set.

    ``watermark`` is ezyVet's clock at the pull's first call, not the newest ``modified_at``
    seen: a record edited mid-pull, after its page was read, is newer than the watermark and
    so is found by the next delta, while "newest seen" could already be past it.
    ``overlap`` re-reads a margin before ``modified_since`` for same-second edits and
    commits that become visible late; the sync engine sees those records as unchanged.

    Clients are contacts with ``is_customer`` "1" (staff and suppliers are contacts too);
    each comes with all its animals, active or not, so the engine sees the whole household.
    """

    def __init__(
        self, client: EzyVetClient, *, modified_since: dt.datetime | None, overlap: dt.timedelta
    ) -> None:
        self.client = client
        self.modified_since = modified_since
        self.overlap = overlap
        self.full = modified_since is None
        self.started_at: dt.datetime | None = None
        self.watermark: dt.datetime | None = None
        self.max_modified_at: dt.datetime | None = None
        self.complete = False
        self.calls = 0
        self.clients = 0
        self.patients = 0
        self.quarantined = 0
        self._pages = 0
        self._detail_types: dict[str, str] = {}
        self._names: dict[str, dict[str, str]] = {"species": {}, "breed": {}, "sex": {}}

    def __iter__(self) -> Iterator[PimsBatch]:
        client = self.client
        calls_before = client.calls
        try:
            self._detail_types = {
                _text(t.get("id")): _text(t.get("name"))
                for t in client.iter_records("contactdetailtype")
            }
            self.started_at = client.last_server_time
            if self.full:
                for page in client.pages("contact", {"is_customer": "1"}):
                    if page:
                        yield self._batch(page, [])
            else:
                yield from self._delta()
            self.watermark = self.started_at
            self.complete = True
        finally:
            self.calls = client.calls - calls_before

    def _delta(self) -> Iterator[PimsBatch]:
        client = self.client
        assert self.modified_since is not None
        since = self.modified_since - self.overlap
        changed = {"modified_at": {"gt": int(since.timestamp())}}
        contacts: dict[str, dict[str, Any]] = {}
        for contact in client.iter_records("contact", {**changed, "is_customer": "1"}):
            contacts[_text(contact.get("id"))] = contact
        owners: set[str] = set()
        for animal in client.iter_records("animal", changed):
            self._see(animal)
            owners.add(_text(animal.get("contact_id")))
        for detail in client.iter_records("contactdetail", changed):
            self._see(detail)
            owners.add(_text(detail.get("contact_id")))
        # An address names no contact; contacts name their addresses, so ask the other way.
        address_ids = [_text(a.get("id")) for a in client.iter_records("address", changed)]
        if address_ids:
            for field_name in ("address_physical", "address_postal"):
                for contact in client.iter_by_ids(
                    "contact", field_name, address_ids, {"is_customer": "1"}
                ):
                    contacts[_text(contact.get("id"))] = contact
        missing = owners - set(contacts) - {"", "0"}
        orphans: list[QuarantinedRecord] = []
        if missing:
            found = {_text(c.get("id")): c for c in client.iter_by_ids("contact", "id", missing)}
            for owner in sorted(missing, key=_id_order):
                owner_record = found.get(owner)
                if owner_record is None:
                    orphans.append(
                        QuarantinedRecord(
                            kind="client",
                            pims_id=owner,
                            reason=f"contact {owner} owns changed records but does not exist",
                            raw={"id": owner},
                        )
                    )
                elif _flag(owner_record.get("is_customer")):
                    contacts[owner] = owner_record
                # A changed pet of a non-customer contact (staff, supplier) is not a client's.
        ordered = sorted(contacts.values(), key=lambda c: _id_order(_text(c.get("id"))))
        if not ordered and orphans:
            yield self._make_batch([], orphans)
        for start in range(0, len(ordered), PAGE_LIMIT):
            yield self._batch(ordered[start : start + PAGE_LIMIT], orphans if start == 0 else [])

    def _see(self, record: Mapping[str, Any]) -> dt.datetime | None:
        stamp = _epoch_datetime(record.get("modified_at"))
        if stamp is not None and (self.max_modified_at is None or stamp > self.max_modified_at):
            self.max_modified_at = stamp
        return stamp

    def _batch(
        self, contacts: list[dict[str, Any]], quarantined: list[QuarantinedRecord]
    ) -> PimsBatch:
        """Related records for one page of contacts in a few ``in`` calls, then records."""
        client = self.client
        contact_ids = [_text(c.get("id")) for c in contacts]
        # Postal addresses only for contacts without a usable physical one: asking for both
        # would spill most pages' ids over one 200-id call for a few PO boxes.
        physical = {_text(c.get("address_physical")) for c in contacts}
        addresses = {_text(a.get("id")): a for a in client.iter_by_ids("address", "id", physical)}
        postal = {
            _text(c.get("address_postal"))
            for c in contacts
            if _address_of(addresses.get(_text(c.get("address_physical")))).is_empty()
        }
        addresses.update(
            {
                _text(a.get("id")): a
                for a in client.iter_by_ids("address", "id", postal - set(addresses))
            }
        )
        details: dict[str, list[dict[str, Any]]] = {}
        for detail in client.iter_by_ids(
            "contactdetail", "contact_id", contact_ids, {"active": "1"}
        ):
            details.setdefault(_text(detail.get("contact_id")), []).append(detail)
        animals: dict[str, list[dict[str, Any]]] = {}
        for animal in client.iter_by_ids("animal", "contact_id", contact_ids):
            animals.setdefault(_text(animal.get("contact_id")), []).append(animal)
        self._resolve_names([a for group in animals.values() for a in group])

        clients: list[PimsClient] = []
        held = list(quarantined)
        for contact in contacts:
            contact_id = _text(contact.get("id"))
            patients: list[PimsPatient] = []
            for animal in animals.get(contact_id, []):
                try:
                    patients.append(self._patient(animal))
                except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                    held.append(
                        QuarantinedRecord(
                            kind="patient",
                            pims_id=_text(animal.get("id")),
                            reason=str(exc),
                            raw=dict(animal),
                            client_pims_id=contact_id,
                        )
                    )
            try:
                clients.append(
                    self._client(contact, addresses, details.get(contact_id, []), patients)
                )
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                held.append(
                    QuarantinedRecord(
                        kind="client", pims_id=contact_id, reason=str(exc), raw=dict(contact)
                    )
                )
        return self._make_batch(clients, held)

    def _make_batch(
        self, clients: list[PimsClient], quarantined: list[QuarantinedRecord]
    ) -> PimsBatch:
        self._pages += 1
        self.clients += len(clients)
        self.patients += sum(len(c.patients) for c in clients)
        self.quarantined += len(quarantined)
        started = int(self.started_at.timestamp()) if self.started_at else 0
        return PimsBatch(
            source=Source.EZYVET,
            batch_id=f"ezyvet-{self.client.credentials.site_uid}-{started}-{self._pages:05d}",
            sent_at=self.client.last_server_time,
            full=self.full,
            clients=tuple(clients),
            quarantined=tuple(quarantined),
        )

    def _resolve_names(self, animals: list[dict[str, Any]]) -> None:
        """Species, breed and sex names for these animals, fetching only ids not yet known."""
        for resource in ("species", "breed", "sex"):
            known = self._names[resource]
            wanted = {_text(a.get(f"{resource}_id")) for a in animals} - set(known) - {"", "0"}
            for record in self.client.iter_by_ids(resource, "id", wanted):
                known[_text(record.get("id"))] = _text(record.get("name"))

    def _client(
        self,
        contact: Mapping[str, Any],
        addresses: Mapping[str, Mapping[str, Any]],
        details: list[dict[str, Any]],
        patients: list[PimsPatient],
    ) -> PimsClient:
        contact_id = _text(contact.get("id"))
        if not contact_id:
            raise ValueError("contact has no id")
        first, last = _client_name(contact)
        stamps = [self._see(contact)]
        address = self._client_address(contact, addresses, stamps)
        ranked = sorted(
            details,
            key=lambda d: (not _flag(d.get("preferred")), _id_order(_text(d.get("id")))),
        )
        email = self._email(ranked, stamps)
        phone = self._phone(ranked)
        known = [s for s in stamps if s is not None]
        return PimsClient(
            pims_id=contact_id,
            first_name=first,
            last_name=last,
            email=email,
            phone=phone,
            address=address,
            active=_flag(contact.get("active"), default=True),
            modified_at=max(known) if known else None,
            patients=tuple(patients),
        )

    def _client_address(
        self,
        contact: Mapping[str, Any],
        addresses: Mapping[str, Mapping[str, Any]],
        stamps: list[dt.datetime | None],
    ) -> PimsAddress:
        """The physical address, else the postal one, else none; the one taken stamps."""
        for key in ("address_physical", "address_postal"):
            record = addresses.get(_text(contact.get(key)))
            if record is None:
                continue
            candidate = _address(record)
            if not candidate.is_empty():
                stamps.append(self._see(record))
                return candidate
        return PimsAddress()

    def _email(self, ranked: list[dict[str, Any]], stamps: list[dt.datetime | None]) -> str:
        """The first email in ``ranked``; every detail with a value stamps the client."""
        email = ""
        for detail in ranked:
            value = _text(detail.get("value"))
            if not value:
                continue
            stamps.append(self._see(detail))
            if "email" in self._detail_kind(detail) and not email:
                email = value
        return email

    def _phone(self, ranked: list[dict[str, Any]]) -> str:
        """The first phone in ``ranked`` by kind, mobile first; never a fax."""
        for wanted in ("mobile", "phone", "home", "work", "after hours"):
            for detail in ranked:
                kind = self._detail_kind(detail)
                if wanted in kind and "fax" not in kind and _text(detail.get("value")):
                    return _text(detail.get("value"))
        return ""

    def _detail_kind(self, detail: Mapping[str, Any]) -> str:
        return (
            self._detail_types.get(_text(detail.get("contact_detail_type_id")))
            or _text(detail.get("name"))
        ).lower()

    def _patient(self, animal: Mapping[str, Any]) -> PimsPatient:
        animal_id = _text(animal.get("id"))
        if not animal_id:
            raise ValueError("animal has no id")
        name = _text(animal.get("name"))
        if not name:
            raise ValueError(f"animal {animal_id} has no name")
        zone = self.client.zone
        weight, unit = _weight(animal.get("weight"), animal.get("weight_unit"))
        names = self._names
        return PimsPatient(
            pims_id=animal_id,
            name=name,
            species=names["species"].get(_text(animal.get("species_id")), ""),
            breed=names["breed"].get(_text(animal.get("breed_id")), ""),
            sex=names["sex"].get(_text(animal.get("sex_id")), ""),
            birth_date=_date(animal.get("date_of_birth"), zone, "date_of_birth"),
            weight=weight,
            weight_unit=unit,
            deceased=_flag(animal.get("is_dead")),
            deceased_on=_date(animal.get("date_of_death"), zone, "date_of_death"),
            microchip=_text(animal.get("microchip_number")),
            active=_flag(animal.get("active"), default=True),
            modified_at=self._see(animal),
        )


def _client_name(contact: Mapping[str, Any]) -> tuple[str, str]:
    """First and last name; a contact with neither (a kennel, a farm) is its business."""
    first, last = _text(contact.get("first_name")), _text(contact.get("last_name"))
    business = _text(contact.get("business_name"))
    if not first and not last:
        if not business:
            raise ValueError("contact has no first name, last name or business name")
        last = business  # a kennel or farm is its own client
    return first, last


def _date(value: object, zone: dt.tzinfo, name: str) -> dt.date | None:
    """A v1 date: epoch seconds (local midnight at the site) or ``YYYY-MM-DD``; "" is none."""
    text = _text(value)
    if not text or text in {"0", "0000-00-00"}:
        return None
    if is_ascii_digits(text.lstrip("-")) and len(text) < 19:
        try:
            return dt.datetime.fromtimestamp(int(text), zone).date()
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"{name} {text!r} is not a date") from exc
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"{name} {text!r} is not a date") from exc


_UNITS = {
    "kg": (WeightUnit.KG, Decimal(1)),
    "kgs": (WeightUnit.KG, Decimal(1)),
    "kilograms": (WeightUnit.KG, Decimal(1)),
    "g": (WeightUnit.KG, Decimal("0.001")),
    "grams": (WeightUnit.KG, Decimal("0.001")),
    "lb": (WeightUnit.LB, Decimal(1)),
    "lbs": (WeightUnit.LB, Decimal(1)),
    "pounds": (WeightUnit.LB, Decimal(1)),
    "oz": (WeightUnit.LB, Decimal(1) / Decimal(16)),
}


def _weight(value: object, unit: object) -> tuple[Decimal | None, WeightUnit]:
    """Weight and unit; grams and ounces become kg and lb. "" or 0 means not weighed."""
    unit_text = _text(unit).lower() or "kg"  # ezyVet's default unit
    if unit_text not in _UNITS:
        raise ValueError(f"weight unit {_text(unit)!r} is not one VetSync knows")
    target, factor = _UNITS[unit_text]
    text = _text(value)
    if not text:
        return None, target
    try:
        weight = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"weight {text!r} is not a number") from exc
    if not weight.is_finite() or weight < 0:
        raise ValueError(f"weight {text!r} is not a weight")
    if weight == 0:
        return None, target
    return (weight * factor).normalize() if factor != 1 else weight, target


def _address_of(record: Mapping[str, Any] | None) -> PimsAddress:
    return PimsAddress() if record is None else _address(record)


def _address(record: Mapping[str, Any]) -> PimsAddress:
    street_2 = _text(record.get("street_2"))
    suburb, city = _text(record.get("suburb")), _text(record.get("city"))
    if suburb and city and suburb != city:
        # Where suburbs are used (NZ, AU), the suburb belongs on the address, under the street.
        street_2 = ", ".join(p for p in (street_2, suburb) if p)
    return PimsAddress(
        line1=_text(record.get("street_1")),
        line2=street_2,
        city=city or suburb,
        state=_text(record.get("state")) or _text(record.get("region")),
        postcode=_text(record.get("post_code")),
        # country_id is an id into ezyVet's own country table, which no scope here reads.
        country="",
    )
