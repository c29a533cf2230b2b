"""What VetSync asks of an ezyVet site: the onboarding check, the pull, the prescribers and
consults, and the external prescriptions it writes back (POST, then PATCH)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from vetsync.pims.ezyvet.credentials import REQUIRED_SCOPES
from vetsync.pims.ezyvet.errors import (
    EzyVetError,
    EzyVetScopeError,
    EzyVetUnavailable,
    _AmbiguousWrite,
)
from vetsync.pims.ezyvet.pull import EzyVetPull
from vetsync.pims.ezyvet.transport import EzyVetTransport
from vetsync.pims.ezyvet.wire import _epoch_datetime, _epoch_text, _single, _text

# The resource whose read proves each scope (the write scope is proved by a lookup, which
# needs it too).
SCOPE_PROBES = {scope: scope.split("-", 1)[1] for scope in REQUIRED_SCOPES}
ITEMS_KEY = "external_prescription_item_list"


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    scope: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """What onboarding shows after the credentials upload: token, then each scope."""

    ok: bool
    token_ok: bool
    error: str = ""
    scopes: tuple[ScopeCheck, ...] = ()
    # ezyVet could not be reached (network, 5xx, 429 after every retry): the credentials
    # were not tried, so nothing is known about them.
    unreachable: bool = False

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        return tuple(check.scope for check in self.scopes if not check.ok)


@dataclass(frozen=True, slots=True)
class EzyVetVet:
    """A user who may prescribe: ``user_id`` is what ``prescribing_vet_user_id`` takes."""

    user_id: str
    title: str
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True, slots=True)
class EzyVetConsult:
    """A clinical record an external prescription can be attached to (``consult_id``)."""

    consult_id: str
    animal_id: str
    vet_user_id: str
    date: dt.datetime | None
    reason: str = ""  # the consult's description [inferred field name]


class EzyVetClient(EzyVetTransport):
    """One ezyVet site over HTTP: tokens, limits, retries, paging, the pull and writeback."""

    # -- onboarding --

    def check_connection(self, scopes: Sequence[str] = REQUIRED_SCOPES) -> ConnectionCheck:
        """Get a token, then read one record per scope VetSync needs; never raises."""
        try:
            self._token = None
            self.access_token()
        except EzyVetError as exc:
            return ConnectionCheck(
                ok=False,
                token_ok=False,
                error=str(exc),
                unreachable=isinstance(exc, EzyVetUnavailable),
            )
        checks = []
        unavailable = 0
        for scope in scopes:
            resource = SCOPE_PROBES.get(scope, scope.split("-", 1)[-1])
            try:
                self.request("GET", resource, params={"limit": 1})
            except EzyVetScopeError:
                checks.append(ScopeCheck(scope, False, "not granted to this integration"))
            except EzyVetError as exc:
                unavailable += isinstance(exc, EzyVetUnavailable)
                checks.append(ScopeCheck(scope, False, str(exc)))
            else:
                checks.append(ScopeCheck(scope, True))
        failed = [c.scope for c in checks if not c.ok]
        error = f"Missing or failing scopes: {', '.join(failed)}." if failed else ""
        return ConnectionCheck(
            ok=not failed,
            token_ok=True,
            error=error,
            scopes=tuple(checks),
            unreachable=bool(failed) and unavailable == len(failed),
        )

    # -- the pull --

    def pull(
        self,
        modified_since: dt.datetime | None = None,
        *,
        overlap: dt.timedelta = dt.timedelta(minutes=5),
    ) -> EzyVetPull:
        """A pull of clients and their patients: everything (``modified_since=None``) or
        what changed since then. Iterate it for ``PimsBatch`` pages; afterwards
        ``watermark`` is what to pass as ``modified_since`` next time."""
        return EzyVetPull(self, modified_since=modified_since, overlap=overlap)

    # -- prescribers and consults --

    def list_vets(self) -> list[EzyVetVet]:
        """Active users whose contact is a vet: the only valid prescribers."""
        users = list(self.iter_records("user", {"active": "1"}))
        vet_contacts = {
            c["id"]
            for c in self.iter_by_ids(
                "contact", "id", [_text(u.get("contact_id")) for u in users], {"is_vet": "1"}
            )
        }
        return [
            EzyVetVet(
                user_id=_text(u.get("id")),
                title=_text(u.get("title")),
                first_name=_text(u.get("first_name")),
                last_name=_text(u.get("last_name")),
                email=_text(u.get("email")),
            )
            for u in users
            if _text(u.get("contact_id")) in vet_contacts
        ]

    def list_consults(self, animal_id: str) -> list[EzyVetConsult]:
        """An animal's consults, newest first, for attaching a prescription to one."""
        consults = [
            EzyVetConsult(
                consult_id=_text(c.get("id")),
                animal_id=_text(c.get("animal_id")),
                vet_user_id=_text(c.get("vet_id")),
                date=_epoch_datetime(c.get("date")),
                reason=_text(c.get("description")),
            )
            for c in self.iter_records("consult", {"animal_id": str(animal_id), "active": "1"})
        ]
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(consults, key=lambda c: c.date or oldest, reverse=True)

    # -- external prescriptions --

    def externalprescription_find(self, external_reference: str) -> dict[str, Any] | None:
        """The prescription VetSync posted under ``external_reference``, if ezyVet has it."""
        # Always a JSON comparator: a reference that starts with "{" must not read as one.
        for record in self.iter_records(
            "externalprescription", {"external_reference": {"eq": external_reference}}
        ):
            return record
        return None

    def externalprescription_get(self, prescription_id: str) -> dict[str, Any] | None:
        for record in self.iter_records("externalprescription", {"id": str(prescription_id)}):
            return record
        return None

    def externalprescription_create(
        self, payload: Mapping[str, Any], *, look_first: bool = False
    ) -> dict[str, Any]:
        """POST a prescription; returns ezyVet's record (keep its ``id`` for PATCH).

        ezyVet has no idempotency key, so a lost answer or a 5xx is resolved by looking the
        ``external_reference`` up before posting again. Pass ``look_first=True`` when an
        earlier delivery of the same prescription may have reached ezyVet.
        """
        reference = str(payload.get("external_reference") or "")
        if not reference:
            raise ValueError("external_reference is required: it is how a lost answer is found.")
        if look_first:
            existing = self.externalprescription_find(reference)
            if existing is not None:
                return existing
        attempt = 0
        while True:
            try:
                body = self.request(
                    "POST", "externalprescription", payload=dict(payload), idempotent=False
                )
            except _AmbiguousWrite as exc:
                attempt += 1
                self._backoff(attempt)
                existing = self.externalprescription_find(reference)
                if existing is not None:
                    return existing
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"Could not post prescription {reference}: {exc}", status=exc.status
                    ) from exc
                continue
            return _single(body, "externalprescription")

    def externalprescription_update(
        self, prescription_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PATCH a prescription (a dispense, or an end status); returns the updated record.

        After a lost answer the record is read back: if it already shows what the PATCH
        asked for, the PATCH was applied and is not sent again (a second "decline" would be
        refused, since the item is no longer Pending).
        """
        path = f"externalprescription/{prescription_id}"
        attempt = 0
        while True:
            try:
                body = self.request("PATCH", path, payload=dict(payload), idempotent=False)
            except _AmbiguousWrite as exc:
                attempt += 1
                self._backoff(attempt)
                current = self.externalprescription_get(prescription_id)
                if current is not None and patch_applied(current, payload):
                    return current
                if attempt >= self.max_attempts:
                    raise EzyVetUnavailable(
                        f"Could not update prescription {prescription_id}: {exc}",
                        status=exc.status,
                    ) from exc
                continue
            return _single(body, "externalprescription")


def patch_applied(record: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    """Whether ``record`` already shows every status and dispense ``payload`` asks for."""
    items = {_text(i.get("external_product_reference")): i for i in record.get(ITEMS_KEY) or []}
    root_dispense = payload.get("date_of_lastdispense")
    wanted = payload.get(ITEMS_KEY)
    if wanted is None:
        wanted = [
            {"external_product_reference": ref}
            for ref, item in items.items()
            if _text(item.get("status")) in {"PENDING", "CURRENT"} or root_dispense
        ]
    for change in wanted:
        item = items.get(_text(change.get("external_product_reference")))
        if item is None:
            return False
        status = _text(change.get("status"))
        if status:
            if _text(item.get("status")) != status or _epoch_text(
                item.get("status_date")
            ) != _epoch_text(change.get("status_date")):
                return False
            continue
        dispense = change.get("date_of_lastdispense") or root_dispense
        if dispense and _epoch_text(item.get("date_of_lastdispense")) != _epoch_text(dispense):
            return False
        # Two dispenses at the same time differ in what is left: compare the numbers too.
        for key in ("qty", "remaining"):
            if key in change and _number_text(item.get(key)) != _number_text(change[key]):
                return False
    return True


def _number_text(value: object) -> str:
    """A v1 number as comparable text: ``"30"``, ``30`` and ``30.0`` are the same."""
    text = _text(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return format(number.normalize(), "f")
