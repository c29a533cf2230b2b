"""``v1/externalprescription``: the pharmacy's writeback, with ezyVet's rules and error texts.

Item statuses: PENDING (prescribed, never dispensed), CURRENT (dispensed at least once), and
the four ends. A dispense (``date_of_lastdispense``) is what makes an item CURRENT; a PATCH
can only end an item (DECLINED_* from PENDING, CANCELLED_* from CURRENT).

Choices where the vendor material is silent, each marked [inferred]:
- a POST item that already carries ``date_of_lastdispense`` starts CURRENT (the vendor guide
  says the field makes an item CURRENT "in a POST or PATCH"); others start PENDING;
- a PATCH item names an existing ``external_product_reference``; PATCH adds no items;
- a root ``date_of_lastdispense`` fills the PATCH's items that carry neither a dispense date
  nor a status, or, when the PATCH lists no items, every PENDING or CURRENT item;
- a PATCH is all-or-nothing: one bad item rejects it and nothing changes;
- ``external_reference`` is not unique: ezyVet has no idempotency key, so duplicates are
  stored (which is why clients look before re-POSTing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vetsync.pims.emulator.data import Record, SiteData
from vetsync.pims.emulator.errors import ApiError

STATUS_ON_POST = "status or status_date are not allowed on POST, use PATCH instead."
STATUS_DATE_REQUIRED = (
    "status_date is required and must be numeric when status is Declined or Cancelled."
)
ONLY_PENDING_DECLINED = "Only Pending items can be changed to Declined."
ONLY_DISPENSED_CANCELLED = "Only Dispensed items can be changed to Cancelled."
PATCH_STATUSES = ("DECLINED_DR", "DECLINED_CLIENT", "CANCELLED_DR", "CANCELLED_CLIENT")
STATUS_NOT_ALLOWED = (
    "status must be one of DECLINED_DR, DECLINED_CLIENT, CANCELLED_DR, CANCELLED_CLIENT; "
    "an item becomes CURRENT through date_of_lastdispense."
)
DISPENSE_REQUIRED = "date_of_lastdispense is required on at least one item when no status is given."
ENDED_NOT_DISPENSABLE = "Declined or Cancelled items cannot be dispensed."
ITEM_TEXT_FIELDS = ("external_product_name", "external_link", "instructions")
ITEM_NUMBER_FIELDS = ("price", "qty", "remaining")
MONEY_FIELDS = frozenset({"price", "total_price"})


def _is_numeric(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return value.strip() != ""
    return False


def _present(mapping: Mapping[str, Any], key: str) -> bool:
    return key in mapping and mapping[key] is not None and mapping[key] != ""


def _wire(value: object, key: str = "") -> str:
    """A JSON value as the string v1 sends back (numbers as strings, money to the cent)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if key in MONEY_FIELDS and _is_numeric(value):
        return f"{float(str(value)):.2f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _epoch(value: object) -> str:
    return str(int(float(str(value))))


# A PATCH's change to one item: the stored item, the PATCH's item, its new status (or ""), and
# its dispense as epoch text (or "").
_Change = tuple[dict[str, str], dict[str, Any], str, str]


def _patch_items(payload: Mapping[str, Any], stored: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The items a PATCH changes: those it lists, else (with a root dispense) every open one."""
    root_dispense = payload.get("date_of_lastdispense")
    if _present(payload, "date_of_lastdispense") and not _is_numeric(root_dispense):
        raise ApiError(
            400, "date_of_lastdispense must be numeric.", fields=("date_of_lastdispense",)
        )
    listed = payload.get("external_prescription_item_list")
    if listed is None:
        listed = []
        if _present(payload, "date_of_lastdispense"):
            listed = [
                {"external_product_reference": item["external_product_reference"]}
                for item in stored
                if item["status"] in {"PENDING", "CURRENT"}
            ]
    if not isinstance(listed, list) or not all(isinstance(i, dict) for i in listed):
        raise ApiError(
            400,
            "external_prescription_item_list must be a list of items.",
            fields=("external_prescription_item_list",),
        )
    return listed


def _item_change(
    payload: Mapping[str, Any], item: Mapping[str, Any], target: Mapping[str, str]
) -> tuple[str, str]:
    """One item's new status (or "") and dispense (or ""), if ezyVet allows them."""
    status = _wire(item.get("status")) if _present(item, "status") else ""
    dispense = item.get("date_of_lastdispense")
    if not _present(item, "date_of_lastdispense") and not status:
        root_dispense = payload.get("date_of_lastdispense")
        dispense = root_dispense if _present(payload, "date_of_lastdispense") else None
    dispense_text = "" if dispense is None or dispense == "" else _epoch(dispense)
    if status:
        _check_status(status, item, target)
    elif dispense_text and target["status"] not in {"PENDING", "CURRENT"}:
        raise ApiError(400, ENDED_NOT_DISPENSABLE, fields=("date_of_lastdispense",))
    return status, dispense_text


def _check_status(status: str, item: Mapping[str, Any], target: Mapping[str, str]) -> None:
    if status not in PATCH_STATUSES:
        raise ApiError(400, STATUS_NOT_ALLOWED, fields=("status",))
    if not _is_numeric(item.get("status_date")):
        raise ApiError(400, STATUS_DATE_REQUIRED, fields=("status_date",))
    if status.startswith("DECLINED") and target["status"] != "PENDING":
        raise ApiError(400, ONLY_PENDING_DECLINED, fields=("status",))
    if status.startswith("CANCELLED") and target["status"] != "CURRENT":
        raise ApiError(400, ONLY_DISPENSED_CANCELLED, fields=("status",))


def _apply_change(
    target: dict[str, str], item: Mapping[str, Any], status: str, dispense_text: str
) -> None:
    for key in ITEM_TEXT_FIELDS + ITEM_NUMBER_FIELDS:
        if key in item:
            target[key] = _wire(item[key], key)
    if dispense_text:
        target["date_of_lastdispense"] = dispense_text
    if status:
        target["status"] = status
        target["status_date"] = _epoch(item["status_date"])
    elif dispense_text and target["status"] == "PENDING":
        target["status"] = "CURRENT"
        target["status_date"] = dispense_text


class PrescriptionBook:
    """External prescriptions with the product groups and products their POSTs create."""

    def __init__(self, data: SiteData) -> None:
        self.data = data

    @property
    def prescriptions(self) -> dict[str, Record]:
        return self.data.tables.setdefault("externalprescription", {})

    def create(self, *, partner_id: str, partner_name: str, payload: object, now: int) -> Record:
        if not isinstance(payload, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        items = payload.get("external_prescription_item_list")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise ApiError(
                400,
                "external_prescription_item_list is required and must be a non-empty list.",
                fields=("external_prescription_item_list",),
            )
        # Checked first: it is the documented answer to a client that sends statuses on POST.
        if any("status" in item or "status_date" in item for item in items):
            raise ApiError(400, STATUS_ON_POST, fields=("status", "status_date"))
        self._check_root(payload)
        references: set[str] = set()
        for item in items:
            for key in ("external_product_name", "external_product_reference"):
                if not _present(item, key):
                    raise ApiError(400, f"{key} is required on every item.", fields=(key,))
            reference = str(item["external_product_reference"])
            if reference in references:
                raise ApiError(
                    400,
                    f"external_product_reference {reference} appears twice in one prescription.",
                    fields=("external_product_reference",),
                )
            references.add(reference)
            self._check_item_numbers(item)

        group = self._product_group(partner_id, partner_name, now)
        stored_items = []
        for item in items:
            product = self._product(group, item, now)
            dispensed = _present(item, "date_of_lastdispense")
            stored_items.append(
                {
                    "id": str(self._next_item_id()),
                    "product_id": product["id"],
                    "external_product_name": _wire(item.get("external_product_name")),
                    "external_product_reference": _wire(item.get("external_product_reference")),
                    "external_link": _wire(item.get("external_link")),
                    "instructions": _wire(item.get("instructions")),
                    "price": _wire(item.get("price"), "price"),
                    "qty": _wire(item.get("qty")),
                    "remaining": _wire(item.get("remaining")),
                    "date_of_lastdispense": (
                        _epoch(item["date_of_lastdispense"]) if dispensed else ""
                    ),
                    "status": "CURRENT" if dispensed else "PENDING",
                    "status_date": (
                        _epoch(item["date_of_lastdispense"])
                        if dispensed
                        else _epoch(payload["date_of_prescription"])
                    ),
                }
            )
        return self.data.add(
            "externalprescription",
            {
                "active": "1",
                "created_at": str(now),
                "modified_at": str(now),
                "partner_id": partner_id,
                "animal_id": _wire(payload.get("animal_id")),
                "contact_id": _wire(payload.get("contact_id")),
                "prescribing_vet_user_id": _wire(payload.get("prescribing_vet_user_id")),
                "consult_id": _wire(payload.get("consult_id")),
                "date_of_prescription": _epoch(payload["date_of_prescription"]),
                "external_reference": _wire(payload.get("external_reference")),
                "total_price": _wire(payload.get("total_price"), "total_price"),
                "external_prescription_item_list": stored_items,
            },
        )

    def update(self, *, prescription_id: str, payload: object, now: int) -> Record:
        record = self.prescriptions.get(prescription_id)
        if record is None:
            raise ApiError(
                404, f"externalprescription {prescription_id} not found.", kind="NotFoundException"
            )
        if not isinstance(payload, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        stored: list[dict[str, str]] = record["external_prescription_item_list"]  # type: ignore[assignment]
        listed = _patch_items(payload, stored)
        # Validate everything before changing anything: a rejected PATCH leaves no trace.
        changes = self._patch_changes(payload, listed, stored)
        for target, item, status, dispense_text in changes:
            _apply_change(target, item, status, dispense_text)
        if "total_price" in payload:
            record["total_price"] = _wire(payload["total_price"], "total_price")
        # date_of_prescription is deliberately ignored on PATCH, as ezyVet does.
        record["modified_at"] = str(now)
        self.data.changed()
        return record

    def _patch_changes(
        self, payload: Mapping[str, Any], listed: list[dict[str, Any]], stored: list[dict[str, str]]
    ) -> list[_Change]:
        """Each listed item with its stored item, new status and dispense; ApiError if any
        one is refused, or if the PATCH neither ends nor dispenses anything."""
        by_reference = {item["external_product_reference"]: item for item in stored}
        changes: list[_Change] = []
        any_status = any(_present(item, "status") for item in listed)
        any_dispense = False
        for item in listed:
            reference = _wire(item.get("external_product_reference"))
            target = by_reference.get(reference)
            if target is None:
                raise ApiError(
                    400,
                    f"No item with external_product_reference {reference or '(none)'} "
                    "on this prescription.",
                    fields=("external_product_reference",),
                )
            self._check_item_numbers(item)
            status, dispense_text = _item_change(payload, item, target)
            if not status and dispense_text:
                any_dispense = True
            changes.append((target, item, status, dispense_text))
        if not any_status and not any_dispense:
            raise ApiError(400, DISPENSE_REQUIRED, fields=("date_of_lastdispense",))
        return changes

    def _check_root(self, payload: Mapping[str, Any]) -> None:
        tables = self.data.tables
        for key in ("animal_id", "contact_id", "prescribing_vet_user_id", "external_reference"):
            if not _present(payload, key):
                raise ApiError(400, f"{key} is required.", fields=(key,))
        if not _is_numeric(payload.get("date_of_prescription")):
            raise ApiError(
                400,
                "date_of_prescription is required and must be numeric.",
                fields=("date_of_prescription",),
            )
        animal = tables["animal"].get(_wire(payload["animal_id"]))
        if animal is None:
            raise ApiError(
                400, f"animal_id {payload['animal_id']} does not exist.", fields=("animal_id",)
            )
        contact_id = _wire(payload["contact_id"])
        if contact_id not in tables["contact"]:
            raise ApiError(400, f"contact_id {contact_id} does not exist.", fields=("contact_id",))
        if animal["contact_id"] != contact_id:
            raise ApiError(
                400,
                f"animal_id {animal['id']} does not belong to contact_id {contact_id}.",
                fields=("animal_id", "contact_id"),
            )
        user_id = _wire(payload["prescribing_vet_user_id"])
        user = tables["user"].get(user_id)
        vet_contact = tables["contact"].get(str(user["contact_id"])) if user else None
        if user is None or vet_contact is None or vet_contact.get("is_vet") != "1":
            raise ApiError(
                400,
                f"prescribing_vet_user_id {user_id} is not a vet user.",
                fields=("prescribing_vet_user_id",),
            )
        if _present(payload, "consult_id"):
            consult = tables["consult"].get(_wire(payload["consult_id"]))
            if consult is None or consult["animal_id"] != animal["id"]:
                raise ApiError(
                    400,
                    f"consult_id {payload['consult_id']} is not a consult of animal_id "
                    f"{animal['id']}.",
                    fields=("consult_id",),
                )

    @staticmethod
    def _check_item_numbers(item: Mapping[str, Any]) -> None:
        for key in (*ITEM_NUMBER_FIELDS, "date_of_lastdispense"):
            if _present(item, key) and not _is_numeric(item[key]):
                raise ApiError(400, f"{key} must be numeric.", fields=(key,))

    def _next_item_id(self) -> int:
        next_id = self.data.next_ids.get("externalprescriptionitem", 1)
        self.data.next_ids["externalprescriptionitem"] = next_id + 1
        return next_id

    def _product_group(self, partner_id: str, partner_name: str, now: int) -> Record:
        groups = self.data.tables.setdefault("productgroup", {})
        for group in groups.values():
            if group["partner_id"] == partner_id:
                return group
        return self.data.add(
            "productgroup",
            {
                "active": "1",
                "created_at": str(now),
                "modified_at": str(now),
                "name": partner_name,
                "partner_id": partner_id,
            },
        )

    def _product(self, group: Record, item: Mapping[str, Any], now: int) -> Record:
        products = self.data.tables.setdefault("product", {})
        reference = _wire(item["external_product_reference"])
        for product in products.values():
            if product["product_group_id"] == group["id"] and (
                product["external_product_reference"] == reference
            ):
                return product
        # Not billable nor sellable: these exist only so the Rx has a product to point at.
        return self.data.add(
            "product",
            {
                "active": "1",
                "created_at": str(now),
                "modified_at": str(now),
                "name": _wire(item["external_product_name"]),
                "product_group_id": group["id"],
                "external_product_reference": reference,
                "is_billable": "0",
                "is_sellable": "0",
            },
        )
