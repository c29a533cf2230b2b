"""Many emulated ezyVet sites in one process, for fleet tests and the fleet benchmark.

Site ``n`` (1-based) answers under ``/site/<n>/``: an integration stores
``http://host:port/site/<n>`` as its base URL and the site's own credentials, and the connector
calls ``…/site/<n>/v1/…`` unchanged. Each site has its own credentials (``site_credentials``),
seed, data, tokens, rate-limit windows, faults, counters and clock of changes; a token or a
credentials file of one site is refused (401) by every other.

Memory: a site's data is generated from its seed on first use, and while the site is idle it is
kept as a compressed pickle (about 250 bytes a client instead of about 5 KB live). At most
``resident_clients`` clients' worth of sites are live at once, least recently used first out;
so 1,000 sites of 1.5 million clients fit in well under 2 GB.

Client counts per site: ``site_clients`` (a mapping, e.g. read from ``--site-clients-file``)
wins; otherwise ``clients_sigma`` draws each site's count from a log-normal with median
``clients``, capped at ``max_clients``, from the fleet's seed (``lognormal_client_counts``);
otherwise every site has ``clients``.

Changes: with ``change_rate`` r, a site changes r times its clients records per ``change_period``
seconds (edits as ``mutate_random`` makes them), applied when the site is next called, so
idle sites cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import random
import re
import threading
import zlib
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

from vetsync.pims.emulator.auth import EmulatorCredentials
from vetsync.pims.emulator.data import DataGenerator
from vetsync.pims.emulator.errors import ApiError
from vetsync.pims.emulator.reply import Reply, _error_reply, _json
from vetsync.pims.emulator.site import EzyVetSite, SiteContent

SITE_PATH = re.compile(r"^/site/(\d+)(/.*)?$")
# Control actions a fleet forwards to the sites its body names ("site", "sites" or "all").
SITE_ACTIONS = ("mutate", "faults", "config", "reset", "expire-tokens")


def site_credentials(
    number: int,
    *,
    seed: int = 1,
    partner_id: str = "vetsync-partner",
    partner_name: str = "VetSync",
) -> EmulatorCredentials:
    """Site ``number``'s credentials: the partner is shared (it is VetSync), the rest its own."""
    secret = hashlib.sha256(f"ezyvet-fleet:{seed}:{number}".encode()).hexdigest()[:24]
    return EmulatorCredentials(
        partner_id=partner_id,
        client_id=f"client-{number:04d}",
        client_secret=secret,
        site_uid=f"site-{number:04d}",
        partner_name=partner_name,
    )


def lognormal_client_counts(
    sites: int, *, seed: int, median: int, sigma: float, cap: int
) -> dict[int, int]:
    """Each site's client count: log-normal with this median, capped, fixed by the seed."""
    rng = random.Random(seed * 104_729 + 17)
    return {
        n: max(1, min(cap, round(median * math.exp(sigma * rng.gauss(0.0, 1.0)))))
        for n in range(1, sites + 1)
    }


class FleetSite(EzyVetSite):
    """One site of a fleet: its data generated on first use, compressed while it is idle."""

    def __init__(
        self,
        *,
        fleet: EzyVetFleet,
        number: int,
        change_rate: float = 0.0,
        change_period: float = 3600.0,
        **options: Any,
    ) -> None:
        self.fleet = fleet
        self.number = number
        self.change_rate = change_rate
        self.change_period = change_period
        super().__init__(**options)

    def reset(self) -> None:
        """Back to the freshly seeded site; its data is generated again when next used."""
        with self.lock:
            self._reset_state()
            self._content = None
            self._frozen: bytes | None = None
            self._frozen_version = -1
            self._changes_owed = 0.0
            self._changes_since = self.clock()
            self.fleet._forget(self)

    @property
    def resident(self) -> bool:
        return self._content is not None

    def _loaded(self) -> SiteContent:
        with self.lock:
            if self._content is None:
                self._content = self._thaw() if self._frozen else self._generate()
            content = self._content
            self.fleet._touch(self)
            return content

    def _thaw(self) -> SiteContent:
        assert self._frozen is not None
        # Only this process's own freeze() wrote the bytes (never input from outside).
        data, breed_ids, rng_state = pickle.loads(zlib.decompress(self._frozen))  # noqa: S301
        rng = random.Random()
        rng.setstate(rng_state)
        generator = DataGenerator(data, rng, self.zone)
        generator.breed_ids = breed_ids
        return self._content_of(data, generator)

    def freeze(self) -> bool:
        """Compress the data and let the live copy go; False when the site is busy."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            content = self._content
            if content is None:
                return True
            data = content.data
            if self._frozen is None or self._frozen_version != data.version:
                data.indexes = {}  # rebuilt on demand; not worth keeping
                state = (data, content.generator.breed_ids, content.generator.rng.getstate())
                self._frozen = zlib.compress(pickle.dumps(state, pickle.HIGHEST_PROTOCOL), 1)
                self._frozen_version = data.version
            self._content = None
            self.fleet._forget(self)
            return True
        finally:
            self.lock.release()

    @property
    def frozen_bytes(self) -> int:
        return len(self._frozen or b"")

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        if path.startswith("/v1/") and self.change_rate > 0:
            with self.lock:
                self._apply_changes()
        return super().handle(method, path, query, headers, body)

    def _apply_changes(self) -> None:
        """The edits the clinic made since the site was last called, stamped now."""
        now = self.clock()
        elapsed = max(0.0, now - self._changes_since)
        owed = self._changes_owed + self.change_rate * self.clients * elapsed / self.change_period
        due = int(owed)
        self._changes_owed = owed - due
        self._changes_since = now
        if due:
            self.edits.mutate_random(due)


class EzyVetFleet:
    """``sites`` emulated ezyVet sites behind one ``handle``, site ``n`` under ``/site/<n>/``."""

    def __init__(
        self,
        *,
        sites: int,
        seed: int = 1,
        clients: int = 500,
        site_clients: Mapping[int, int] | None = None,
        clients_sigma: float | None = None,
        max_clients: int = 10_000,
        resident_clients: int = 100_000,
        change_rate: float = 0.0,
        change_period: float = 3600.0,
        partner_id: str = "vetsync-partner",
        partner_name: str = "VetSync",
        log_size: int = 1_000,
        **site_options: Any,
    ) -> None:
        if sites < 1:
            raise ValueError("A fleet has at least one site.")
        self.lock = threading.Lock()
        self.seed = seed
        self.resident_clients = resident_clients
        self._resident: OrderedDict[int, int] = OrderedDict()
        counts = dict(site_clients or {})
        if clients_sigma is not None:
            drawn = lognormal_client_counts(
                sites, seed=seed, median=clients, sigma=clients_sigma, cap=max_clients
            )
            counts = {**drawn, **counts}
        self.sites: dict[int, FleetSite] = {}
        for n in range(1, sites + 1):
            self.sites[n] = FleetSite(
                fleet=self,
                number=n,
                change_rate=change_rate,
                change_period=change_period,
                clients=int(counts.get(n, clients)),
                seed=seed * 1_000_003 + n,
                credentials=site_credentials(
                    n, seed=seed, partner_id=partner_id, partner_name=partner_name
                ),
                log_size=log_size,
                **site_options,
            )

    # -- sites -----------------------------------------------------------------------------

    def site(self, number: int) -> FleetSite:
        try:
            return self.sites[number]
        except KeyError:
            message = f"No site {number}: this fleet has sites 1 to {len(self.sites)}."
            raise KeyError(message) from None

    def generate_all(self) -> None:
        """Generate every site's data now, not on its first call (those beyond the resident
        budget are kept compressed): a benchmark then times VetSync, not the data's making."""
        for site in self.sites.values():
            site._loaded()

    @staticmethod
    def site_path(number: int) -> str:
        return f"/site/{number}"

    def site_list(self) -> list[dict[str, object]]:
        """Every site: where it answers, its credentials and size (``GET /_emulator/sites``)."""
        listing: list[dict[str, object]] = []
        for n, site in self.sites.items():
            creds = site.credentials
            listing.append(
                {
                    "site": n,
                    "path": self.site_path(n),
                    "clients": site.clients,
                    "seed": site.seed,
                    "credentials": {
                        "partner_id": creds.partner_id,
                        "client_id": creds.client_id,
                        "client_secret": creds.client_secret,
                        "site_uid": creds.site_uid,
                    },
                }
            )
        return listing

    def _touch(self, site: FleetSite) -> None:
        """``site`` is live and just used: keep it, and compress the least recently used
        others while the live ones hold more clients than the budget."""
        with self.lock:
            if site.number in self._resident:
                self._resident.move_to_end(site.number)
                return
            self._resident[site.number] = site.clients
            excess = sum(self._resident.values()) - self.resident_clients
            victims: list[int] = []
            for n, count in self._resident.items():
                if excess <= 0:
                    break
                if n != site.number:
                    victims.append(n)
                    excess -= count
        for n in victims:
            # A busy site (its lock held) stays live; it is a victim again next time.
            self.sites[n].freeze()

    def _forget(self, site: FleetSite) -> None:
        with self.lock:
            self._resident.pop(site.number, None)

    def state(self) -> dict[str, Any]:
        """What the fleet holds and was asked, without waking any site."""
        statuses: Counter[str] = Counter()
        per_site: dict[str, dict[str, object]] = {}
        for n, site in self.sites.items():
            with site.lock:
                counts = dict(site.status_counts)
                total = sum(site.request_counts.values())
            statuses.update(counts)
            per_site[str(n)] = {"requests": total, "status_counts": counts}
        with self.lock:
            resident = dict(self._resident)
        return {
            "sites": len(self.sites),
            "clients_total": sum(site.clients for site in self.sites.values()),
            "resident_sites": len(resident),
            "resident_clients": sum(resident.values()),
            "resident_budget": self.resident_clients,
            "frozen_bytes": sum(site.frozen_bytes for site in self.sites.values()),
            "requests_total": sum(int(str(s["requests"])) for s in per_site.values()),
            "status_counts": dict(statuses),
            "per_site": per_site,
        }

    # -- requests --------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        """Route ``/site/<n>/…`` to site ``n``; ``/_emulator/…`` is the fleet's control."""
        match = SITE_PATH.match(path)
        if match is not None:
            site = self.sites.get(int(match[1]))
            if site is None:
                return _error_reply(
                    ApiError(404, f"No site {match[1]} on this emulator.", kind="NotFoundException")
                )
            return site.handle(method, match[2] or "/", query, headers, body)
        if path.startswith("/_emulator/"):
            return self._control(method, path.removeprefix("/_emulator/").strip("/"), body)
        return _error_reply(
            ApiError(
                404,
                f"This emulator hosts {len(self.sites)} sites: call /site/<n>/v1/…",
                kind="NotFoundException",
            )
        )

    def _control(self, method: str, action: str, body: bytes) -> Reply:
        if method == "GET" and action == "state":
            return Reply(200, _json(self.state()))
        if method == "GET" and action == "sites":
            return Reply(200, _json(self.site_list()))
        if method != "POST" or action not in SITE_ACTIONS:
            return Reply(404, _json({"error": f"No control endpoint {method} {action}."}))
        try:
            spec = json.loads(body or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("The body must be a JSON object.")
            numbers = self._named_sites(spec)
        except (ValueError, KeyError, TypeError) as exc:
            return Reply(400, _json({"error": str(exc)}))
        rest = _json({k: v for k, v in spec.items() if k not in {"site", "sites", "all"}})
        results: dict[str, object] = {}
        for n in numbers:
            reply = self.sites[n]._control(method, action, rest)
            if reply.status != 200:
                return reply
            results[str(n)] = json.loads(reply.body)
        if "site" in spec:
            return Reply(200, _json(results[str(numbers[0])]))
        return Reply(200, _json({"sites": results}))

    def _named_sites(self, spec: Mapping[str, Any]) -> list[int]:
        """The sites a control body names: ``site``, ``sites`` (a list) or ``all``."""
        if spec.get("all"):
            return list(self.sites)
        if "site" in spec:
            named = [spec["site"]]
        elif isinstance(spec.get("sites"), list):
            named = list(spec["sites"])
        else:
            raise ValueError('Name the sites: "site": n, "sites": [n, …] or "all": true.')
        numbers = [int(n) for n in named]
        unknown = [n for n in numbers if n not in self.sites]
        if unknown:
            raise ValueError(f"No site {unknown[0]}: this fleet has sites 1 to {len(self.sites)}.")
        return numbers
