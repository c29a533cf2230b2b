"""Benchmark: the multi-site ezyVet emulator's memory and speed with a fleet of sites.

Starts ``python -m vetsync.pims.emulator --sites N --clients 1000 --clients-sigma 0.9
--max-clients 10000`` (about 1,500 clients a site, 1.5 million for 1,000 sites), then over HTTP
as the connector does: for every site a token and a delta-shaped read (``contact`` modified in
the last hour, which generates the site on first use), then the same reads again (sites long
evicted are decompressed). Prints the emulator's peak memory (VmHWM; target for 1,000 sites:
under 2 GB), the time to first touch every site, and the p50/p95 of a delta read on a site
generated before (the decompress included when it was evicted), with the load average.

    python bench/bench_emulator_fleet.py            # 1,000 sites (minutes of CPU to generate)
    python bench/bench_emulator_fleet.py --quick    # 100 sites

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def start_emulator(sites: int, resident: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "vetsync.pims.emulator", "--port", "0", "--sites", str(sites),
         "--clients", "1000", "--clients-sigma", "0.9", "--max-clients", "10000",
         "--resident-clients", str(resident), "--rate-per-minute", "0",
         "--endpoint-rate-per-minute", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        process.terminate()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, match.group(1)


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def delta_read(session: requests.Session, url: str, site: dict[str, object]) -> float:
    """A token and one delta-shaped page from ``site``; the seconds it took."""
    creds = site["credentials"]
    assert isinstance(creds, dict)
    base = f"{url}{site['path']}/v1"
    started = time.perf_counter()
    token = session.post(
        f"{base}/oauth/access_token",
        json={**creds, "grant_type": "client_credentials", "scope": "read-contact"},
        timeout=120,
    ).json()["access_token"]
    since = json.dumps({"gt": int(time.time()) - 3600})
    answer = session.get(
        f"{base}/contact",
        params={"modified_at": since, "limit": "200"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    answer.raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--resident-clients", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="100 sites")
    args = parser.parse_args()
    sites_wanted = 100 if args.quick else args.sites
    process, url = start_emulator(sites_wanted, args.resident_clients)
    try:
        session = requests.Session()
        sites = session.get(f"{url}/_emulator/sites", timeout=30).json()
        clients = sum(int(s["clients"]) for s in sites)
        started = time.perf_counter()
        for site in sites:
            delta_read(session, url, site)
        first_touch = time.perf_counter() - started
        again = sorted(delta_read(session, url, site) for site in sites)
        state = session.get(f"{url}/_emulator/state", timeout=30).json()
        peak = peak_memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    load = os.getloadavg()
    print(f"sites: {len(sites):,}, clients: {clients:,} (log-normal, median 1,000, cap 10,000)")
    print(f"first touch of every site (generate): {first_touch:.1f} s")
    print(
        f"a delta read on a site made before: p50 {statistics.median(again) * 1000:.0f} ms, "
        f"p95 {again[int(len(again) * 0.95) - 1] * 1000:.0f} ms"
    )
    print(
        f"live: {state['resident_sites']} sites, {state['resident_clients']:,} clients "
        f"(budget {state['resident_budget']:,}); "
        f"compressed: {state['frozen_bytes'] / 2**20:.0f} MiB"
    )
    print(f"emulator peak memory (VmHWM): {peak:,.0f} MB (target for 1,000 sites: < 2,048)")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
