"""The two rule tables of prescriptions, each in one place: item status transitions
(ezyVet's) and writeback eligibility (DESIGN.md's WriteBack table)."""

from __future__ import annotations

from dataclasses import dataclass

from clinics.models import Clinic
from prescriptions.models import Channel, ItemStatus, Product, ProductKind

DECLINES = frozenset({ItemStatus.DECLINED_DR, ItemStatus.DECLINED_CLIENT})
CANCELS = frozenset({ItemStatus.CANCELLED_DR, ItemStatus.CANCELLED_CLIENT})
ENDS = DECLINES | CANCELS


class TransitionError(ValueError):
    """A status change ezyVet's rules forbid; the message is for staff."""


def check_dispense(status: str) -> None:
    """A dispense (a shipment) makes a Pending or Current item Current; nothing else."""
    if status not in (ItemStatus.PENDING, ItemStatus.CURRENT):
        raise TransitionError(
            f"This item is {ItemStatus(status).label.lower()}: an ended item cannot be dispensed."
        )


def check_end(status: str, new_status: str) -> None:
    """Declined only before any dispense (from Pending), cancelled only after (from Current)."""
    if new_status not in ENDS:
        raise TransitionError(
            "An item ends as declined or cancelled; it becomes Current only by a dispense."
        )
    if new_status in DECLINES and status != ItemStatus.PENDING:
        raise TransitionError(
            "Only a pending item (never dispensed) can be declined; "
            "a dispensed item is cancelled instead."
        )
    if new_status in CANCELS and status != ItemStatus.CURRENT:
        raise TransitionError(
            "Only a dispensed item can be cancelled; an item never dispensed is declined instead."
        )


def end_status_for(status: str, *, by_client: bool = False) -> ItemStatus:
    """The end an open item takes: declined if never dispensed, cancelled if it was."""
    if status == ItemStatus.PENDING:
        return ItemStatus.DECLINED_CLIENT if by_client else ItemStatus.DECLINED_DR
    if status == ItemStatus.CURRENT:
        return ItemStatus.CANCELLED_CLIENT if by_client else ItemStatus.CANCELLED_DR
    raise TransitionError("This item has already ended.")


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str


def writeback_eligibility(
    *, clinic: Clinic, product: Product, channel: str, prescribed: bool
) -> Eligibility:
    """Whether a line is written into the PIMS, and why (DESIGN.md's table, row by row).

    ``prescribed``: the line is on a vet's prescription (for OTC: part of a treatment plan).
    """
    if not clinic.writeback_enabled:
        return Eligibility(False, "WriteBack is off for this clinic.")
    if product.is_compounded:
        return Eligibility(False, "Compounded medication (Wedgewood) is never written back.")
    if channel == Channel.ECONNECT:
        return Eligibility(False, "eConnect orders are not written back.")
    if product.kind == ProductKind.RX_NUTRITION:
        return Eligibility(True, "Rx nutrition is written back.")
    if product.kind == ProductKind.OTC:
        if prescribed:
            return Eligibility(True, "An OTC product in a treatment plan is written back.")
        return Eligibility(False, "An OTC product outside a treatment plan is not written back.")
    if channel in (Channel.PORTAL, Channel.STORE):
        return Eligibility(True, "A prescription item ordered via the portal or the store.")
    return Eligibility(False, f"Orders from {channel} are not written back.")
