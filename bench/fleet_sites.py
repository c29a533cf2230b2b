"""The fleet bench's ezyVet sites: many emulated sites in one process, one port.

Site ``i`` answers under ``/site/<i>`` (its ``/v1/…`` API and its ``/_emulator/…`` controls),
with its own credentials (``client_id`` ``fleet-<i>``, ``site_uid`` ``fleet-site-<i>``), data
(``clients`` from its seed), rate limits (per window) and faults; a site is generated on its
first request, so start-up is quick and memory grows with the sites actually onboarded.
``GET /_emulator/summary`` sums every generated site's answers by status (429s, 5xx, dropped).

    python bench/fleet_sites.py --spec sites.json [--window-seconds 60] [--port 0]

``sites.json`` is a list of ``{"clients": n, "seed": s}``. The first line on stdout is
``listening on <url>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import contextlib

from vetsync.pims.emulator import EmulatorCredentials, EzyVetEmulator, EzyVetSite  # noqa: E402
from vetsync.pims.emulator.reply import Reply, _json  # noqa: E402


def site_credentials(index: int) -> EmulatorCredentials:
    return EmulatorCredentials(
        client_id=f"fleet-{index}",
        client_secret=f"fleet-secret-{index}-{(index * 7919) % 100003:05d}",
        site_uid=f"fleet-site-{index}",
    )


class FleetSites(EzyVetSite):
    """Routes ``/site/<i>/…`` to site ``i`` (made on first use); answers the fleet summary."""

    def __init__(self, spec: list[dict[str, int]], window_seconds: float) -> None:
        self.spec = spec
        self.window_seconds = window_seconds
        self.sites: dict[int, EzyVetSite] = {}
        self.making = threading.Lock()

    def site(self, index: int) -> EzyVetSite:
        with self.making:
            if index not in self.sites:
                entry = self.spec[index]
                self.sites[index] = EzyVetSite(
                    clients=int(entry["clients"]),
                    seed=int(entry["seed"]),
                    window_seconds=self.window_seconds,
                    credentials=site_credentials(index),
                    consults_per_animal=(0, 1),
                )
            return self.sites[index]

    def handle(
        self,
        method: str,
        path: str,
        query: Any,
        headers: Any,
        body: bytes,
    ) -> Reply:
        parts = path.split("/", 3)  # "", "site", "<i>", rest
        if path == "/_emulator/summary":
            return Reply(200, _json(self.summary()))
        if len(parts) < 4 or parts[1] != "site" or not parts[2].isdigit():
            return Reply(404, _json({"error": f"No site in {path}."}))
        index = int(parts[2])
        if index >= len(self.spec):
            return Reply(404, _json({"error": f"No site {index}."}))
        return self.site(index).handle(method, "/" + parts[3], query, headers, body)

    def summary(self) -> dict[str, Any]:
        with self.making:
            sites = list(self.sites.values())
        statuses: Counter[str] = Counter()
        for site in sites:
            with site.lock:
                statuses.update(site.status_counts)
        return {"sites": len(sites), "status_counts": dict(statuses)}


class FleetServer(EzyVetEmulator, FleetSites):
    """``FleetSites`` on a real socket (the emulator's HTTP layer, unchanged)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FleetServer(json.loads(args.spec.read_text()), args.window_seconds)
    print(f"listening on {server.bind('127.0.0.1', args.port)}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
