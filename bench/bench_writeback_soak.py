"""WriteBack soak: prescriptions through approve -> ship -> ship -> cancel into ezyVet, with
injected faults and a Celery worker killed (SIGKILL) and restarted midway.

Phase 1 (soak): SOAK_PRESCRIPTIONS (1,000) prescriptions, each approved (POST), shipped twice
(two PATCH dispenses) and cancelled (PATCH status), each action its own transaction, against
the ezyVet emulator on a real socket. Faults are kept at SOAK_FAULT_RATIO (20 %) of the
writeback calls: 429 + Retry-After, 503, slow answers, dropped connections, and writes applied
but answered by a dropped connection. Rate limits are off on both sides: the emulator's, and
the connector's own (a worker process otherwise keeps to 60 calls a minute by itself, which
would make this phase take an hour; a generated ``soak_app`` module turns them off and is the
only difference from the product; SOAK_CLIENT_LIMITS=1 keeps them). Real ``celery worker``
processes deliver; the bench plays beat (``writeback_sweep`` on beat's schedule). When half the
rows are delivered, one worker's process group is SIGKILLed and a new worker started. When no
row is pending or sending it prints the rows by status, the emulator's prescriptions per
``external_reference`` (duplicates), lost rows (delivered but ezyVet differs, failed, or never
there), every item's status, status date and remaining compared, and commit -> delivered
p50/p95.

Phase 2 (fault-free, workers exactly as in the product): SOAK_CLEAN_PRESCRIPTIONS (200) with
the emulator's limits off, then SOAK_LIMITED_PRESCRIPTIONS (25) under ezyVet's limits (180
calls/min per site, 60 per endpoint): delivery p50/p95 after commit and throughput (rows/s).

A throwaway database: a SQLite file in a temporary directory, or, when DATABASE_URL names a
PostgreSQL server, a database created there and dropped afterwards (any other DATABASE_URL is
used as given). The filesystem Celery broker, in the same directory (REDIS_URL is ignored),
polled every SOAK_BROKER_POLLING s (0.1; kombu's 1 s caps a worker at ~`concurrency` tasks a
second). Prints figures; exits non-zero only when a row is lost, a prescription is duplicated
in ezyVet, or a phase does not converge.

    python bench/bench_writeback_soak.py

Scale and tune with SOAK_PRESCRIPTIONS, SOAK_CLEAN_PRESCRIPTIONS, SOAK_LIMITED_PRESCRIPTIONS
(0 skips a phase), SOAK_FAULT_RATIO, SOAK_WORKERS (2), SOAK_CONCURRENCY (8 per worker),
SOAK_SWEEP_SECONDS (beat's schedule), SOAK_TIMEOUT (420 s to converge after the last commit),
SOAK_PACED_PRESCRIPTIONS (100) and SOAK_PACE (10 actions/s: delivery latency under a load
the workers keep up with), SOAK_BATCH (20 prescriptions per step), SOAK_SEED,
SOAK_LOG_DIR (keep the workers' logs);
WRITEBACK_BACKOFF_BASE (0.5), WRITEBACK_BACKOFF_MAX (5), WRITEBACK_LEASE_SECONDS (45 in phase
1, the settings' in phase 2, where a worker's own limiter may wait up to 60 s inside a send).
"""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vetsync.pims.emulator import EzyVetEmulator  # noqa: E402  (ROOT is put on the path above)

EP = "externalprescription"
# (kind, weight, options): what a faulted writeback call meets.
FAULTS: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("rate_limit", 25, {"retry_after": 1}),
    ("server_error", 25, {"status": 503}),
    ("drop", 15, {}),
    ("lost_write", 20, {}),
    ("delay", 15, {"seconds": 1.5}),
)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Config:
    prescriptions: int = env_int("SOAK_PRESCRIPTIONS", 1000)
    clean: int = env_int("SOAK_CLEAN_PRESCRIPTIONS", 200)
    limited: int = env_int("SOAK_LIMITED_PRESCRIPTIONS", 25)
    paced: int = env_int("SOAK_PACED_PRESCRIPTIONS", 100)
    pace: float = env_float("SOAK_PACE", 10.0)  # actions a second in the paced run
    fault_ratio: float = env_float("SOAK_FAULT_RATIO", 0.2)
    workers: int = env_int("SOAK_WORKERS", 2)
    concurrency: int = env_int("SOAK_CONCURRENCY", 8)
    sweep_seconds: float = env_float("SOAK_SWEEP_SECONDS", 0)  # 0: beat's own schedule
    timeout: float = env_float("SOAK_TIMEOUT", 420.0)
    batch: int = env_int("SOAK_BATCH", 20)
    seed: int = env_int("SOAK_SEED", 7)
    polling: float = env_float("SOAK_BROKER_POLLING", 0.1)
    client_limits: bool = os.environ.get("SOAK_CLIENT_LIMITS", "") not in ("", "0")


# --- the throwaway database and the worker processes ------------------------------------------


@contextmanager
def throwaway_database(tmp: Path) -> Iterator[str]:
    """The DATABASE_URL the run uses, and (PostgreSQL) the database dropped afterwards."""
    given = os.environ.get("DATABASE_URL", "")
    if not given.startswith(("postgres://", "postgresql://")):
        yield given or f"sqlite:///{tmp / 'var' / 'vetsync.sqlite3'}"
        return
    import psycopg

    name = f"vetsync_bench_writeback_soak_{os.getpid()}"
    with psycopg.connect(given, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield given.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(given, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Workers:
    """``celery -A <app> worker`` processes, each in its own process group (so SIGKILL takes
    the pool's children too, as a crashed machine would)."""

    def __init__(self, logs: Path, concurrency: int) -> None:
        self.logs = logs
        self.concurrency = concurrency
        self.app = "vetsync"
        self.env: dict[str, str] = {}
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.started = 0
        self.log_files: list[Path] = []

    def deliveries_taken(self) -> int:
        """``writeback_deliver`` tasks the workers have taken so far (from their INFO logs)."""
        pattern = re.compile(rb"writeback_deliver\[[^\]]+\] received")
        return sum(len(pattern.findall(log.read_bytes())) for log in self.log_files)

    def restart_all(self, count: int, app: str, env: dict[str, str]) -> None:
        self.stop_all()
        self.app, self.env = app, env
        for _ in range(count):
            self.start()

    def start(self) -> str:
        self.started += 1
        name = f"soak{self.started}"
        log = self.logs / f"{name}.log"
        self.log_files.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    self.app,
                    "worker",
                    "--loglevel=INFO",
                    f"--concurrency={self.concurrency}",
                    "-n",
                    f"{name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = proc
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Worker {name} did not start:\n{tail}")
            time.sleep(0.1)
        return name

    def kill(self, name: str) -> None:
        proc = self.running.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.running.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.running.clear()


# --- faults: ezyVet misbehaving on a share of the writeback calls -----------------------------


class FaultKeeper(threading.Thread):
    """The emulator's faults are counted, not probabilistic: keep injecting one at a time so
    that about ``ratio`` of all ``v1/externalprescription`` calls meet one."""

    def __init__(self, site: EzyVetEmulator, ratio: float, seed: int) -> None:
        super().__init__(name="fault-keeper", daemon=True)
        self.site = site
        self.ratio = ratio
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.injected: list[Any] = []  # the emulator's Fault objects, to count what was met

    def calls(self) -> int:
        counts = self.site.request_counts
        return sum(n for key, n in counts.items() if key.endswith(" " + EP))

    def run(self) -> None:
        kinds = [k for k, _, _ in FAULTS]
        weights = [w for _, w, _ in FAULTS]
        options = {k: o for k, _, o in FAULTS}
        while not self.halt.wait(0.005):
            with self.site.lock:
                self.site.faults[:] = [f for f in self.site.faults if f.remaining > 0]
                if self.site.faults or len(self.injected) >= self.ratio * (self.calls() + 1):
                    continue
                kind = self.rng.choices(kinds, weights)[0]
                self.site.inject_fault(kind, 1, endpoint=EP, **options[kind])
                self.injected.append(self.site.faults[-1])

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.site.clear_faults()

    def met(self) -> Counter[str]:
        return Counter(f.kind for f in self.injected if f.remaining <= 0)


# --- the clinic and the prescriptions' lives ---------------------------------------------------


@dataclass
class Clinic:
    clinic: Any
    vet: Any
    vet_user: Any
    patients: list[Any]
    products: list[Any]


def soak_zone() -> str:
    """A zone whose date is not UTC's for the next hour, whatever time the soak runs: a date
    computed in the server's zone (UTC) instead of the clinic's then lands on another day."""
    import datetime as dt

    hour = dt.datetime.now(dt.UTC).hour
    return "Pacific/Pago_Pago" if hour < 10 else "Pacific/Kiritimati"  # UTC-11, UTC+14


def make_clinic(site: EzyVetEmulator, slug: str) -> Clinic:
    """A clinic on ezyVet with WriteBack on, as tests/prescriptions/conftest.py sets one up:
    credentials uploaded, the vet's ezyVet user id, pets linked to the emulator's animals."""
    from django.contrib.auth import get_user_model

    from clinics.models import Clinic as ClinicModel
    from clinics.models import Connector, Integration, Membership, Role, Vet
    from clinics.services import integration_connect_ezyvet
    from prescriptions.models import Product, ProductKind
    from records.models import Client, Patient

    clinic = ClinicModel.objects.create(
        name=f"Soak {slug}",
        slug=slug,
        writeback_enabled=True,
        timezone=os.environ.get("SOAK_TIMEZONE") or soak_zone(),
    )
    integration = Integration.objects.create(
        clinic=clinic, connector=Connector.EZYVET, base_url=site.base_url
    )
    check = integration_connect_ezyvet(integration=integration, text=site.credentials.as_text())
    if not check.ok:
        raise RuntimeError(f"The emulator refused the credentials: {check.error}")
    vet_user = get_user_model().objects.create_user(f"{slug}-vet", password=None)
    Membership.objects.create(user=vet_user, clinic=clinic, role=Role.VET)
    vet = Vet.objects.create(
        clinic=clinic,
        user=vet_user,
        first_name="Soak",
        last_name="Vet",
        pims_user_id=str(site.records("consult")[0]["vet_id"]),
    )
    owners: dict[str, Any] = {}
    patients = []
    for animal in site.records("animal"):
        if animal["is_dead"] == "1" or animal["active"] != "1":
            continue
        contact = str(animal["contact_id"])
        if contact not in owners:
            owners[contact] = Client.objects.create(
                clinic=clinic, first_name="Owner", last_name=contact, pims_id=contact
            )
        patients.append(
            Patient.objects.create(
                clinic=clinic,
                client=owners[contact],
                name=str(animal["name"]) or "Pet",
                pims_id=str(animal["id"]),
            )
        )
    products = [
        Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "kind": ProductKind.RX_MEDICATION, "price": price}
        )[0]
        for sku, name, price in (
            ("CARP-75", "Carprofen 75 mg chewable", "0.85"),
            ("APOQ-16", "Apoquel 16 mg", "2.40"),
        )
    ]
    return Clinic(clinic, vet, vet_user, patients, products)


@dataclass
class Driver:
    """Each prescription's life, pipelined: step t approves batch t, ships batch t-1 (first
    shipment) and t-2 (second), and cancels batch t-3, each action its own transaction."""

    world: Clinic
    count: int
    batch: int
    on_action: Any = None  # called after every action (the bench's beat and chaos)
    pace: float = 0.0  # at most this many actions a second (0: as fast as they commit)
    rxs: list[Any] = field(default_factory=list)
    actions: int = 0
    elapsed: float = 0.0
    started: float = 0.0

    def run(self) -> None:
        self.started = started = time.monotonic()
        batches = [
            range(start, min(start + self.batch, self.count))
            for start in range(0, self.count, self.batch)
        ]
        for step in range(len(batches) + 3):
            if step < len(batches):
                for i in batches[step]:
                    self.rxs.append(self.approve(i))
                    self.done()
            for lag, act in ((1, self.ship), (2, self.ship), (3, self.cancel)):
                if 0 <= step - lag < len(batches):
                    for i in batches[step - lag]:
                        act(self.rxs[i])
                        self.done()
        self.elapsed = time.monotonic() - started

    def done(self) -> None:
        self.actions += 1
        if self.on_action is not None:
            self.on_action()
        if self.pace:
            ahead = self.started + self.actions / self.pace - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def approve(self, i: int) -> Any:
        from prescriptions.services import ItemSpec, prescription_create

        w = self.world
        products = w.products if i % 2 else w.products[:1]
        return prescription_create(
            clinic=w.clinic,
            patient=w.patients[i % len(w.patients)],
            vet=w.vet,
            items=[
                ItemSpec(product=p, quantity=30, refills=2, instructions="One daily with food")
                for p in products
            ],
            actor=w.vet_user,
            approve=True,
        )

    def ship(self, rx: Any) -> None:
        from prescriptions.services import LineSpec, order_place, order_ship

        items = list(rx.items.select_related("product"))
        order = order_place(
            clinic=self.world.clinic,
            patient=rx.patient,
            lines=[LineSpec(product=it.product, quantity=30, prescription_item=it) for it in items],
            actor=self.world.vet_user,
        )
        order_ship(order=order, actor=self.world.vet_user, carrier="UPS", tracking_number="1Z")

    def cancel(self, rx: Any) -> None:
        from prescriptions.services import prescription_items_end

        prescription_items_end(
            prescription=rx, actor=self.world.vet_user, reason="Soak: course finished"
        )


# --- beat, chaos, convergence ------------------------------------------------------------------


@dataclass
class Beat:
    """The bench's stand-in for Celery beat (the writeback sweep), plus the mid-run crash."""

    clinic: Any
    sweep_seconds: float
    workers: Workers
    kill_when_delivered: int | None = None  # rows delivered before one worker is killed
    restart_after: float = 3.0
    next_sweep: float = 0.0
    next_check: float = 0.0
    sweeps: int = 0
    killed: str = ""
    killed_at: float = 0.0
    killed_sending: list[int] = field(default_factory=list)
    restarted: str = ""
    delivered_at_kill: int = 0
    next_depth: float = 0.0
    max_queue: int = 0

    def queue_depth(self) -> int:
        """Messages waiting in the filesystem broker (each a file)."""
        from django.conf import settings

        return sum(1 for name in os.listdir(settings.BROKER_DIR / "out") if name.endswith(".msg"))

    def __call__(self) -> None:
        from prescriptions.models import WritebackItem
        from prescriptions.tasks import writeback_sweep_task

        now = time.monotonic()
        if now >= self.next_sweep:
            writeback_sweep_task.delay()
            self.sweeps += 1
            self.next_sweep = now + self.sweep_seconds
        if now >= self.next_depth:
            self.max_queue = max(self.max_queue, self.queue_depth())
            self.next_depth = now + 1.0
        if self.kill_when_delivered is None or self.restarted or now < self.next_check:
            return
        self.next_check = now + 0.5
        if not self.killed:
            rows = WritebackItem.objects.filter(clinic=self.clinic)
            delivered = rows.filter(status=WritebackItem.Status.DELIVERED).count()
            if delivered >= self.kill_when_delivered:
                self.killed = next(iter(self.workers.running))
                self.killed_sending = list(
                    rows.filter(status=WritebackItem.Status.SENDING).values_list("pk", flat=True)
                )
                self.workers.kill(self.killed)
                self.killed_at = now
                self.delivered_at_kill = delivered
                print(
                    f"  SIGKILL worker {self.killed} (process group) with {delivered} rows "
                    f"delivered and {len(self.killed_sending)} claimed (sending)",
                    flush=True,
                )
        elif now - self.killed_at >= self.restart_after:
            self.restarted = self.workers.start()
            print(f"  started worker {self.restarted}", flush=True)

    def converge(self, timeout: float) -> bool:
        """Keep sweeping until no row of the clinic is pending or sending (or time runs out)."""
        from prescriptions.models import WritebackItem

        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + 30
        while time.monotonic() < deadline:
            self()
            open_rows = WritebackItem.objects.filter(
                clinic=self.clinic, status__in=[WritebackItem.Status.PENDING, "sending"]
            ).count()
            done = self.kill_when_delivered is None or bool(self.restarted)
            if open_rows == 0 and done:
                return True
            if time.monotonic() >= next_report:
                print(f"  ... {open_rows} rows still pending or sending", flush=True)
                next_report = time.monotonic() + 30
            time.sleep(0.25)
        return False


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


def verify(world: Clinic, site: EzyVetEmulator) -> Verdict:
    """Compare every outbox row and every item with the emulator's records."""
    from prescriptions.models import Prescription, WritebackItem

    Status = WritebackItem.Status
    records = site.records(EP)
    by_ref: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_ref[str(record["external_reference"])].append(record)
    rxs = list(Prescription.objects.filter(clinic=world.clinic).prefetch_related("items__product"))
    rows = list(WritebackItem.objects.filter(clinic=world.clinic).order_by("pk"))
    examples: list[str] = []

    def note(text: str) -> None:
        if len(examples) < 8:
            examples.append(text)

    def record_of(rx: Any) -> dict[str, Any] | None:
        found = by_ref.get(rx.external_reference) or []
        for record in found:
            if str(record["id"]) == rx.pims_id:
                return record
        return found[0] if found else None

    def items_of(rx: Any) -> dict[str, dict[str, Any]]:
        record = record_of(rx)
        listed = record["external_prescription_item_list"] if record else []
        return {str(i["external_product_reference"]): i for i in listed}

    rx_by_pk = {rx.pk: rx for rx in rxs}
    last_dispense: dict[int, int] = {}
    for row in rows:
        if row.kind == WritebackItem.Kind.DISPENSE:
            last_dispense[row.prescription_id] = max(
                last_dispense.get(row.prescription_id, 0), row.pk
            )

    def differences(row: Any) -> list[str]:
        """How ezyVet's record falls short of what the row asked for (empty: it has it)."""
        items = items_of(rx_by_pk[row.prescription_id])
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
            elif last_dispense.get(row.prescription_id) != row.pk:
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

    lost = 0
    for row in rows:
        if row.status not in (Status.FAILED, Status.DELIVERED):
            continue
        ref = rx_by_pk[row.prescription_id].external_reference
        problems = differences(row)
        if row.status == Status.FAILED:
            lost += 1
            there = "ezyVet has the change all the same" if not problems else "not in ezyVet"
            note(f"row {row.pk} ({row.kind}, {ref}) failed ({there}): {row.last_error[:120]}")
        elif problems:
            lost += 1
            note(f"row {row.pk} ({row.kind}, {ref}) delivered but ezyVet differs: "
                 f"{'; '.join(problems)}")  # fmt: skip
    for ref, found in sorted(by_ref.items()):
        if len(found) > 1:
            note(f"{ref} is in ezyVet {len(found)} times (ids {[r['id'] for r in found]})")
    missing = 0
    n_items = mismatches = 0
    days = dispense_days(world, rxs, items_of)
    for day_note in days:
        note(day_note)
    for rx in rxs:
        if rx.external_reference not in by_ref:
            missing += 1
            note(f"{rx.external_reference} is not in ezyVet")
        items = items_of(rx)
        for item in rx.items.all():
            n_items += 1
            theirs = items.get(item.product.sku)
            want = (item.status, epoch(item.status_date), str(item.remaining))
            got = (theirs["status"], theirs["status_date"], theirs["remaining"]) if theirs else None
            if got != want:
                mismatches += 1
                note(f"{rx.external_reference} {item.product.sku}: VetSync {want}, ezyVet {got}")
    delivered = [
        (r.created_at, r.delivered_at)
        for r in rows
        if r.status == Status.DELIVERED and r.delivered_at is not None
    ]
    latencies = [(done - committed).total_seconds() for committed, done in delivered]
    throughput = 0.0
    if delivered:
        span = max(done for _, done in delivered) - min(r.created_at for r in rows)
        throughput = len(delivered) / max(span.total_seconds(), 1e-9)
    return Verdict(
        rows=len(rows),
        by_status=Counter(r.status for r in rows),
        per_reference=Counter(len(v) for v in by_ref.values()),
        duplicates=sum(1 for v in by_ref.values() if len(v) > 1),
        missing=missing,
        lost=lost + missing,
        items=n_items,
        mismatches=mismatches,
        day_mismatches=len(days),
        zone=world.clinic.timezone,
        latencies=latencies,
        throughput=throughput,
        examples=examples,
    )


def dispense_days(world: Clinic, rxs: list[Any], items_of: Any) -> list[str]:
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


# --- the phases ----------------------------------------------------------------------------------


def soak(cfg: Config, workers: Workers) -> bool:
    print(
        f"phase 1 (soak): {cfg.prescriptions} prescriptions x (approve, ship, ship, cancel); "
        f"{cfg.fault_ratio:.0%} of writeback calls faulted; emulator rate limits off",
        flush=True,
    )
    site = EzyVetEmulator(clients=120, seed=cfg.seed, rate_per_minute=0, endpoint_rate_per_minute=0)
    site.start()
    keeper = FaultKeeper(site, cfg.fault_ratio, cfg.seed)
    try:
        world = make_clinic(site, "soak")
        beat = Beat(
            world.clinic,
            cfg.sweep_seconds,
            workers,
            kill_when_delivered=2 * cfg.prescriptions,  # half of the 4 rows per prescription
        )
        driver = Driver(world, cfg.prescriptions, cfg.batch, on_action=beat)
        tasks_before = workers.deliveries_taken()
        keeper.start()
        started = time.monotonic()
        driver.run()
        print(
            f"  {driver.actions} actions committed in {driver.elapsed:.1f} s "
            f"({driver.actions / driver.elapsed:.0f}/s)",
            flush=True,
        )
        converged = beat.converge(cfg.timeout)
        elapsed = time.monotonic() - started
        keeper.stop()
        met = keeper.met()
        calls = keeper.calls()
        verdict = verify(world, site)
        print(
            f"  {'converged' if converged else 'DID NOT CONVERGE'} in {elapsed:.1f} s; "
            f"{beat.sweeps} sweeps; broker backlog up to {beat.max_queue} messages"
        )
        print(
            f"  faults met {sum(met.values())} of {calls} writeback calls "
            f"({sum(met.values()) / max(calls, 1):.1%}): {dict(met.most_common())}"
        )
        if beat.killed:
            from prescriptions.models import WritebackItem

            claimed = WritebackItem.objects.filter(pk__in=beat.killed_sending)
            print(
                f"  killed {beat.killed} at {beat.delivered_at_kill} delivered, restarted as "
                f"{beat.restarted}; its {len(beat.killed_sending)} claimed rows ended "
                f"{dict(Counter(claimed.values_list('status', flat=True)))}"
            )
        else:
            print("  NO WORKER WAS KILLED (the run ended before half the rows were delivered)")
        tasks = workers.deliveries_taken() - tasks_before
        print(f"  {attempts_summary(world.clinic, tasks)}")
        print_verdict(verdict, site)
        return converged and verdict.ok
    finally:
        if keeper.is_alive():
            keeper.stop()
        site.stop()


def clean(
    cfg: Config, workers: Workers, count: int, limited: bool, slug: str, pace: float = 0.0
) -> bool:
    limits = "ezyVet's limits (180/min per site, 60/min per endpoint)" if limited else "no limits"
    paced = f", paced at {pace:g} actions/s" if pace else ", actions as fast as they commit"
    print(
        f"phase 2 (fault-free, {limits}{paced}): {count} prescriptions x "
        "(approve, ship, ship, cancel)",
        flush=True,
    )
    site = (
        EzyVetEmulator(clients=120, seed=cfg.seed)
        if limited
        else EzyVetEmulator(
            clients=120, seed=cfg.seed, rate_per_minute=0, endpoint_rate_per_minute=0
        )
    )
    site.start()
    try:
        world = make_clinic(site, slug)
        site.reset_counters()
        beat = Beat(world.clinic, cfg.sweep_seconds, workers)
        driver = Driver(world, count, cfg.batch, on_action=beat, pace=pace)
        tasks_before = workers.deliveries_taken()
        started = time.monotonic()
        driver.run()
        converged = beat.converge(cfg.timeout)
        elapsed = time.monotonic() - started
        verdict = verify(world, site)
        print(
            f"  {driver.actions} actions committed in {driver.elapsed:.1f} s; "
            f"{'converged' if converged else 'DID NOT CONVERGE'} in {elapsed:.1f} s; "
            f"broker backlog up to {beat.max_queue} messages"
        )
        tasks = workers.deliveries_taken() - tasks_before
        print(f"  {attempts_summary(world.clinic, tasks)}")
        print_verdict(verdict, site)
        return converged and verdict.ok
    finally:
        site.stop()


SOAK_APP = '''"""The product's Celery app, its ezyVet connector's own rate limits off (the
emulator's are off too): a worker process otherwise keeps to 60 calls/min on its own."""

import functools

import django

from vetsync.celery import app

django.setup()
from prescriptions.writeback import delivery  # noqa: E402

delivery.ezyvet_client = functools.partial(
    delivery.ezyvet_client, rate_per_minute=0, endpoint_rate_per_minute=0
)
__all__ = ["app"]
'''


def prepare(tmp: Path, cfg: Config, database_url: str) -> None:
    """The environment every process shares: settings as they are, but the filesystem broker
    polled more often than kombu's 1 s (which caps a worker at ~`concurrency` tasks/s)."""
    (tmp / "soak_settings.py").write_text(
        "from vetsync.settings import *  # noqa: F403\n"
        "CELERY_BROKER_TRANSPORT_OPTIONS = {\n"
        "    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405\n"
        f"    'polling_interval': {cfg.polling},\n"
        "}\n"
    )
    (tmp / "soak_app.py").write_text(SOAK_APP)
    sys.path.insert(0, str(tmp))
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        {
            "PYTHONPATH": os.pathsep.join(
                [str(tmp), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "DJANGO_SETTINGS_MODULE": "soak_settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "VETSYNC_VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": database_url,
            "WRITEBACK_BACKOFF_BASE": os.environ.get("WRITEBACK_BACKOFF_BASE", "0.5"),
            "WRITEBACK_BACKOFF_MAX": os.environ.get("WRITEBACK_BACKOFF_MAX", "5"),
        }
    )


def worker_env(lease: int | None) -> dict[str, str]:
    """The workers' environment; ``lease`` None keeps the product's (WRITEBACK_LEASE_SECONDS
    set by the caller wins either way)."""
    env = dict(os.environ)
    if lease is not None:
        env.setdefault("WRITEBACK_LEASE_SECONDS", str(lease))
    return env


def main() -> int:
    cfg = Config()
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-soak-") as tmp_name:
        tmp = Path(tmp_name)
        with throwaway_database(tmp) as database_url:
            prepare(tmp, cfg, database_url)
            import django

            django.setup()
            # The filesystem broker has no host; kombu says so once per connection.
            logging.getLogger("kombu.connection").setLevel(logging.ERROR)
            from django.core.management import call_command
            from django.db import connection

            call_command("migrate", verbosity=0)
            from django.conf import settings

            if not cfg.sweep_seconds:
                sweep = settings.CELERY_BEAT_SCHEDULE["prescriptions-writeback-sweep"]
                cfg.sweep_seconds = float(cast(float, sweep["schedule"]))
            print(
                f"WriteBack soak on {connection.vendor}; {cfg.workers} Celery workers x "
                f"{cfg.concurrency} processes; filesystem broker polled every {cfg.polling:g} s; "
                f"sweep every {cfg.sweep_seconds:g} s; backoff "
                f"{os.environ['WRITEBACK_BACKOFF_BASE']}..{os.environ['WRITEBACK_BACKOFF_MAX']} s",
                flush=True,
            )
            logs = Path(os.environ.get("SOAK_LOG_DIR") or tmp)
            logs.mkdir(parents=True, exist_ok=True)
            workers = Workers(logs, cfg.concurrency)
            ok = True
            try:
                if cfg.prescriptions:
                    app = "vetsync" if cfg.client_limits else "soak_app"
                    env = worker_env(45)
                    workers.restart_all(cfg.workers, app, env)
                    print(
                        f"phase 1 workers: lease {env['WRITEBACK_LEASE_SECONDS']} s; connector's "
                        f"own limits {'as in the product' if cfg.client_limits else 'off'}",
                        flush=True,
                    )
                    ok = soak(cfg, workers) and ok
                if cfg.clean or cfg.limited:
                    env = worker_env(None)
                    workers.restart_all(cfg.workers, "vetsync", env)
                    lease = env.get("WRITEBACK_LEASE_SECONDS")
                    print(
                        f"phase 2 workers: the product as is (its connector keeps to 180/60 "
                        f"calls a minute per process); lease "
                        f"{f'{lease} s' if lease else 'as in the settings'}",
                        flush=True,
                    )
                if cfg.clean:
                    ok = clean(cfg, workers, cfg.clean, limited=False, slug="clean") and ok
                if cfg.paced:
                    ok = (
                        clean(cfg, workers, cfg.paced, limited=False, slug="paced", pace=cfg.pace)
                        and ok
                    )
                if cfg.limited:
                    ok = clean(cfg, workers, cfg.limited, limited=True, slug="limited") and ok
            finally:
                workers.stop_all()
                connection.close()
            print("OK" if ok else "FAILED: rows lost or duplicated, or a phase did not converge")
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
