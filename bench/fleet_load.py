"""The load the fleet bench puts on VetSync, on its compressed clock: changes in the ezyVet
sites (``/_emulator/mutate``), agents posting small deltas through the agent API, WriteBack
from prescriptions approved across the fleet, and sites failing for a while
(``/_emulator/faults``)."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from fleet_world import AgentClinic, EzyVetClinic


@dataclass(frozen=True)
class Clock:
    """``compression`` simulated seconds pass in a wall-clock second (10: an hour in 6 min)."""

    compression: float
    started: float

    def sim_minutes(self, now: float | None = None) -> float:
        return (
            ((now if now is not None else time.monotonic()) - self.started) * self.compression / 60
        )

    def wall(self, sim_minutes: float) -> float:
        """Wall-clock seconds of ``sim_minutes`` simulated minutes."""
        return sim_minutes * 60 / self.compression

    def at(self, sim_minutes: float) -> float:
        """The monotonic time when the simulated clock reads ``sim_minutes``."""
        return self.started + self.wall(sim_minutes)


def agent_batch(
    clinic: AgentClinic, rng: random.Random, count: int, sequence: int
) -> dict[str, object]:
    """``count`` of the clinic's clients as its agent sends them after a change: the same
    names and pets each time (so nothing waits for staff), a new e-mail and weight."""
    now = dt.datetime.now(dt.UTC)
    clients = []
    for number in rng.sample(range(1, clinic.clients + 1), min(count, clinic.clients)):
        stamp = now.isoformat().replace("+00:00", "Z")
        clients.append(
            {
                "pims_id": f"C-{number}",
                "first_name": f"Owner{number % 97}",
                "last_name": f"Fleet{clinic.index}x{number}",
                "email": f"owner{number}.{sequence}@example.org",
                "phone": f"+1 503 555 {number % 10000:04d}",
                "address": {
                    "line1": f"{number} Alder St",
                    "city": "Portland",
                    "state": "OR",
                    "postcode": "97205",
                    "country": "US",
                },
                "active": True,
                "modified_at": stamp,
                "patients": [
                    {
                        "pims_id": f"P-{number}",
                        "name": f"Pet{number % 89}",
                        "species": "Canine",
                        "weight": round(rng.uniform(4, 40), 1),
                        "weight_unit": "kg",
                        "active": True,
                        "modified_at": stamp,
                    }
                ],
            }
        )
    return {
        "source": "syncvet",
        "batch_id": f"fleet-{clinic.index}-{sequence}",
        "sent_at": now.isoformat().replace("+00:00", "Z"),
        "full": False,
        "clients": clients,
    }


@dataclass
class AgentFleet:
    """Every agent clinic posts every ``every`` simulated minutes (each at its own phase), with
    ``per_hour`` of its clients changed an hour spread over its posts (at least one a post)."""

    web_url: str
    clinics: Sequence[AgentClinic]
    every: float
    per_hour: float
    clock: Clock
    threads: int = 6
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(17)
        phases = {c.index: rng.uniform(0, self.every) for c in self.clinics}
        sequence: Counter[int] = Counter()
        local = threading.local()

        def post(clinic: AgentClinic, number: int) -> None:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            per_post = clinic.clients * self.per_hour * self.every / 60
            count = max(1, int(per_post) + (rng.random() < per_post % 1))
            body = json.dumps(
                agent_batch(clinic, random.Random(number * 7919 + clinic.index), count, number)
            )
            started = time.monotonic()
            try:
                answer = session.post(
                    f"{self.web_url}/api/agent/v1/batches",
                    data=body,
                    headers={
                        "Authorization": f"Bearer {clinic.token}",
                        "Content-Type": "application/json",
                        "User-Agent": "fleet-bench-agent/1.0",
                    },
                    timeout=60,
                )
            except requests.RequestException as exc:
                self.errors.append(str(exc))
                return
            self.latencies.append(time.monotonic() - started)
            self.statuses[answer.status_code] += 1
            if answer.status_code >= 400 and len(self.errors) < 20:
                self.errors.append(f"{answer.status_code} {answer.text[:200]}")

        with ThreadPoolExecutor(self.threads) as pool:
            while not self.halt.is_set():
                now = self.clock.sim_minutes()
                for clinic in self.clinics:
                    due = phases[clinic.index] + sequence[clinic.index] * self.every
                    if due <= now:
                        sequence[clinic.index] += 1
                        pool.submit(post, clinic, sequence[clinic.index])
                self.halt.wait(0.25)


@dataclass
class Prescribing:
    """``rate`` prescriptions approved a wall-clock second, across the live ezyVet clinics
    whose prescriber is ready; each is a WriteBack row (``POST v1/externalprescription``)."""

    rate: float
    ready: Callable[[], list[EzyVetClinic]]
    errors: list[str] = field(default_factory=list)
    made: int = 0
    halt: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from django.db import close_old_connections
        from fleet_world import prescribe, products

        rng = random.Random(23)
        catalogue = products()
        started = time.monotonic()
        while not self.halt.is_set():
            clinics = self.ready()
            if clinics:
                try:
                    prescribe(rng.choice(clinics), rng, catalogue)
                    self.made += 1
                except Exception as exc:
                    self.errors.append(repr(exc))
            else:
                started = time.monotonic() - self.made / self.rate
            close_old_connections()
            self.halt.wait(max(0.0, started + (self.made + 1) / self.rate - time.monotonic()))


def site_faults(sites_url: str, site: int, kind: str, seconds: float) -> None:
    """Site ``site`` answers every data call with 503 (``server_error``) or drops the
    connection (``drop``) for ``seconds`` (the emulator ends the fault itself)."""
    fault: dict[str, object] = {"kind": kind, "for_seconds": seconds}
    if kind == "server_error":
        fault["status"] = 503
    answer = requests.post(
        f"{sites_url}/_emulator/faults",
        json={"site": site, "clear": True, "faults": [fault]},
        timeout=30,
    )
    answer.raise_for_status()
