"""The WriteBack soak's verdict: every outbox row and every item compared with what the ezyVet
emulator ended up with (lost, duplicated, mismatched), and commit -> delivered latencies."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from vetsync.pims.emulator import EzyVetEmulator

EP = "externalprescription"


# --- what ezyVet ended up with -----------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def epoch(value: Any) -> str:
    import datetime as dt

    if value is None:
        return ""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(12, 0), tzinfo=dt.UTC)
    return str(int(value.timestamp()))


@dataclass
class Verdict:
    rows: int
    by_status: Counter[str]
    per_reference: Counter[int]
    duplicates: int
    missing: int
    lost: int
    items: int
    mismatches: int
    day_mismatches: int  # date_of_lastdispense on another day than the ship date, at the clinic
    zone: str  # the clinic's time zone
    latencies: list[float]
    throughput: float
    examples: list[str]

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.day_mismatches == 0


class _Comparison:
    """VetSync's outbox rows and prescriptions beside ezyVet's records, with the first few
    disagreements written out as examples."""

    def __init__(self, world: Any, site: EzyVetEmulator) -> None:
        from prescriptions.models import Prescription, WritebackItem

        self.by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in site.records(EP):
            self.by_ref[str(record["external_reference"])].append(record)
        self.rxs = list(
            Prescription.objects.filter(clinic=world.clinic).prefetch_related("items__product")
        )
        self.rows = list(WritebackItem.objects.filter(clinic=world.clinic).order_by("pk"))
        self.rx_by_pk = {rx.pk: rx for rx in self.rxs}
        self.last_dispense: dict[int, int] = {}
        for row in self.rows:
            if row.kind == WritebackItem.Kind.DISPENSE:
                rx_id = row.prescription_id
                self.last_dispense[rx_id] = max(self.last_dispense.get(rx_id, 0), row.pk)
        self.examples: list[str] = []

    def note(self, text: str) -> None:
        if len(self.examples) < 8:
            self.examples.append(text)

    def record_of(self, rx: Any) -> dict[str, Any] | None:
        found = self.by_ref.get(rx.external_reference) or []
        for record in found:
            if str(record["id"]) == rx.pims_id:
                return record
        return found[0] if found else None

    def items_of(self, rx: Any) -> dict[str, dict[str, Any]]:
        record = self.record_of(rx)
        listed = record["external_prescription_item_list"] if record else []
        return {str(i["external_product_reference"]): i for i in listed}

    def differences(self, row: Any) -> list[str]:
        """How ezyVet's record falls short of what the row asked for (empty: it has it)."""
        from prescriptions.models import WritebackItem

        items = self.items_of(self.rx_by_pk[row.prescription_id])
        problems = []
        for line in row.payload["external_prescription_item_list"]:
            item = items.get(line["external_product_reference"])
            if item is None:
                problems.append(f"no item {line['external_product_reference']}")
            elif row.kind == WritebackItem.Kind.PRESCRIBE:
                continue
            elif row.kind == WritebackItem.Kind.STATUS:
                got = (item["status"], item["status_date"])
                want = (line["status"], str(line["status_date"]))
                if got != want:
                    problems.append(f"status {got} != {want}")
            elif self.last_dispense.get(row.prescription_id) != row.pk:
                # A later shipment overwrote this one's date: ezyVet's must not be older.
                if int(item["date_of_lastdispense"] or 0) < int(line["date_of_lastdispense"]):
                    problems.append(f"not dispensed at {line['date_of_lastdispense']}")
            else:
                keys = ("date_of_lastdispense", "qty", "remaining")
                theirs = tuple(item[k] for k in keys)
                ours = tuple(str(line[k]) for k in keys)
                if theirs != ours:
                    problems.append(f"(date_of_lastdispense, qty, remaining) {theirs} != {ours}")
        return problems

    def lost_rows(self) -> int:
        """Rows that failed, or were delivered while ezyVet does not have what they asked."""
        from prescriptions.models import WritebackItem

        Status = WritebackItem.Status
        lost = 0
        for row in self.rows:
            if row.status not in (Status.FAILED, Status.DELIVERED):
                continue
            ref = self.rx_by_pk[row.prescription_id].external_reference
            problems = self.differences(row)
            if row.status == Status.FAILED:
                lost += 1
                there = "ezyVet has the change all the same" if not problems else "not in ezyVet"
                self.note(
                    f"row {row.pk} ({row.kind}, {ref}) failed ({there}): {row.last_error[:120]}"
                )
            elif problems:
                lost += 1
                self.note(f"row {row.pk} ({row.kind}, {ref}) delivered but ezyVet differs: "
                          f"{'; '.join(problems)}")  # fmt: skip
        return lost

    def missing_and_mismatched(self) -> tuple[int, int, int]:
        """Prescriptions not in ezyVet, items compared, items whose status, status date or
        remaining quantity differ."""
        missing = n_items = mismatches = 0
        for rx in self.rxs:
            if rx.external_reference not in self.by_ref:
                missing += 1
                self.note(f"{rx.external_reference} is not in ezyVet")
            items = self.items_of(rx)
            for item in rx.items.all():
                n_items += 1
                theirs = items.get(item.product.sku)
                want = (item.status, epoch(item.status_date), str(item.remaining))
                got = (
                    (theirs["status"], theirs["status_date"], theirs["remaining"])
                    if theirs
                    else None
                )
                if got != want:
                    mismatches += 1
                    self.note(
                        f"{rx.external_reference} {item.product.sku}: VetSync {want}, ezyVet {got}"
                    )
        return missing, n_items, mismatches

    def latencies(self) -> tuple[list[float], float]:
        """Commit -> delivered of every delivered row (s), and delivered rows a second."""
        from prescriptions.models import WritebackItem

        delivered = [
            (r.created_at, r.delivered_at)
            for r in self.rows
            if r.status == WritebackItem.Status.DELIVERED and r.delivered_at is not None
        ]
        if not delivered:
            return [], 0.0
        span = max(done for _, done in delivered) - min(r.created_at for r in self.rows)
        latencies = [(done - committed).total_seconds() for committed, done in delivered]
        return latencies, len(delivered) / max(span.total_seconds(), 1e-9)


def verify(world: Any, site: EzyVetEmulator) -> Verdict:
    """Compare every outbox row and every item with the emulator's records."""
    check = _Comparison(world, site)
    lost = check.lost_rows()
    for ref, found in sorted(check.by_ref.items()):
        if len(found) > 1:
            check.note(f"{ref} is in ezyVet {len(found)} times (ids {[r['id'] for r in found]})")
    days = dispense_days(world, check.rxs, check.items_of)
    for day_note in days:
        check.note(day_note)
    missing, n_items, mismatches = check.missing_and_mismatched()
    latencies, throughput = check.latencies()
    return Verdict(
        rows=len(check.rows),
        by_status=Counter(r.status for r in check.rows),
        per_reference=Counter(len(v) for v in check.by_ref.values()),
        duplicates=sum(1 for v in check.by_ref.values() if len(v) > 1),
        missing=missing,
        lost=lost + missing,
        items=n_items,
        mismatches=mismatches,
        day_mismatches=len(days),
        zone=world.clinic.timezone,
        latencies=latencies,
        throughput=throughput,
        examples=check.examples,
    )


def dispense_days(world: Any, rxs: list[Any], items_of: Any) -> list[str]:
    """Each dispensed item whose ``date_of_lastdispense``, read in the clinic's time zone (as
    ezyVet shows it), is not the day its last shipment was recorded as shipped there."""
    import datetime as dt

    from prescriptions.models import Order

    clinic = world.clinic
    shipped: dict[int, dt.date] = {}
    for item_id, day in Order.objects.filter(
        clinic=clinic, status=Order.Status.SHIPPED, lines__prescription_item__isnull=False
    ).values_list("lines__prescription_item", "shipped_on"):
        shipped[item_id] = max(day, shipped.get(item_id, day))
    wrong = []
    for rx in rxs:
        theirs = items_of(rx)
        for item in rx.items.all():
            got = theirs.get(item.product.sku)
            if item.pk not in shipped or not got or not got["date_of_lastdispense"]:
                continue
            day = dt.datetime.fromtimestamp(int(got["date_of_lastdispense"]), clinic.zone).date()
            if day != shipped[item.pk]:
                wrong.append(
                    f"{rx.external_reference} {item.product.sku}: shipped {shipped[item.pk]} "
                    f"({clinic.timezone}), ezyVet shows {day}"
                )
    return wrong


def print_verdict(v: Verdict, site: EzyVetEmulator) -> None:
    from prescriptions.models import WritebackItem

    statuses = ", ".join(f"{s} {v.by_status.get(s, 0)}" for s in WritebackItem.Status.values)
    refs = ", ".join(f"{n} record(s): {c}" for n, c in sorted(v.per_reference.items()))
    print(f"  outbox rows {v.rows}: {statuses}")
    print(f"  ezyVet prescriptions per external_reference: {refs}")
    print(f"  duplicated references {v.duplicates}; missing from ezyVet {v.missing}")
    print(f"  lost (delivered but ezyVet differs, failed, or missing) {v.lost}")
    print(f"  items compared {v.items}; status/status_date/remaining mismatches {v.mismatches}")
    print(
        f"  date_of_lastdispense on another day than shipped, at the clinic ({v.zone}): "
        f"{v.day_mismatches}"
    )
    print(
        f"  commit -> delivered: p50 {pct(v.latencies, 0.5):.2f} s, p95 "
        f"{pct(v.latencies, 0.95):.2f} s, max {max(v.latencies, default=0):.2f} s; "
        f"throughput {v.throughput:.1f} rows/s"
    )
    state = site.state()
    calls = {k: n for k, n in state["request_counts"].items() if k.endswith(EP)}
    print(
        f"  ezyVet calls {', '.join(f'{k} {n}' for k, n in sorted(calls.items()))}; "
        f"answers {dict(sorted(state['status_counts'].items()))}; "
        f"tokens issued {state['tokens_issued']}"
    )
    for example in v.examples:
        print(f"    ! {example}")


def attempts_summary(clinic: Any, tasks: int) -> str:
    from prescriptions.models import WritebackAttempt

    attempts = list(
        WritebackAttempt.objects.filter(item__clinic=clinic).values_list("item_id", "outcome")
    )
    outcomes = Counter(outcome for _, outcome in attempts)
    per_row = Counter(Counter(item for item, _ in attempts).values())
    return (
        f"{len(attempts)} attempts, by outcome {dict(outcomes.most_common())}; rows by "
        f"attempts {dict(sorted(per_row.items()))}\n  {tasks} writeback_deliver tasks ran "
        f"for them ({tasks - len(attempts)} found their row blocked, taken or not due)"
    )
