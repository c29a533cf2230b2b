"""How close a full ezyVet pull comes to the rate-limit floor, and what a delta costs.

Starts the emulator in-process with 10,000 clients and ezyVet's limits (180 calls per site,
60 per endpoint) scaled down in count and window together, so the whole structure runs
faster than real time but keeps its shape; pulls everything with the connector under the
same limits; then edits 0.1 %, 1 % and 10 % of the site, pulling the delta after each.
Prints figures, asserts nothing.

    python bench/bench_ezyvet_pull.py [--clients 10000] [--window-seconds 1] [--rate 18]
                                      [--endpoint-rate 6] [--changes 0.01]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

# Run as a plain script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vetsync.pims.emulator import EzyVetEmulator
from vetsync.pims.ezyvet import EzyVetClient, EzyVetPull, parse_credentials_file

REAL_WINDOW = 60.0
REAL_RATE = 180


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--window-seconds", type=float, default=1.0, help="rate window, both sides (ezyVet: 60)"
    )
    parser.add_argument("--rate", type=int, default=18, help="calls per window per site")
    parser.add_argument("--endpoint-rate", type=int, default=6, help="per window per endpoint")
    parser.add_argument("--changes", type=float, default=0.01, help="share of clients to edit")
    return parser.parse_args()


def floor_seconds(pull: EzyVetPull, client: EzyVetClient, args: argparse.Namespace) -> float:
    """The least time these calls can take at the limits' steady rate: calls / limit x window,
    for the site limit and for the busiest endpoint, whichever binds."""
    site = pull.calls / args.rate
    busiest = max(client.calls_by_endpoint.values()) / args.endpoint_rate
    return max(site, busiest) * args.window_seconds


def run_pull(
    client: EzyVetClient, since: dt.datetime | None = None
) -> tuple[EzyVetPull, float, int]:
    client.calls_by_endpoint.clear()
    started = time.monotonic()
    # No overlap: each delta should count only its own changes (production keeps minutes).
    pull = client.pull(since, overlap=dt.timedelta(0))
    clients = sum(len(batch.clients) for batch in pull)
    return pull, time.monotonic() - started, clients


def main() -> None:
    args = parse_args()
    # How much faster than ezyVet's real site limit this bench's limit lets calls through.
    speedup = (args.rate / args.window_seconds) / (REAL_RATE / REAL_WINDOW)
    print(
        f"ezyVet pull bench: {args.clients:,} clients; limits {args.rate}/site and "
        f"{args.endpoint_rate}/endpoint per {args.window_seconds:g} s window "
        f"(ezyVet: 180 and 60 per 60 s, so this runs {speedup:.0f}x faster)"
    )
    built = time.monotonic()
    site = EzyVetEmulator(
        clients=args.clients,
        seed=args.seed,
        rate_per_minute=args.rate,
        endpoint_rate_per_minute=args.endpoint_rate,
        window_seconds=args.window_seconds,
    )
    url = site.start()
    print(f"  emulator: {url}, built in {time.monotonic() - built:.1f} s")
    client = EzyVetClient(
        url,
        parse_credentials_file(site.credentials.as_text()),
        rate_per_minute=args.rate,
        endpoint_rate_per_minute=args.endpoint_rate,
        window_seconds=args.window_seconds,
    )
    try:
        full, elapsed, clients = run_pull(client)
        floor = floor_seconds(full, client, args)
        by_endpoint = ", ".join(f"{k} {v}" for k, v in client.calls_by_endpoint.most_common())
        print("full pull")
        print(f"  clients {clients:,}, patients {full.patients:,}, quarantined {full.quarantined}")
        print(f"  requests {full.calls} ({by_endpoint})")
        print(f"  elapsed {elapsed:.1f} s; floor (calls/limit x window) {floor:.1f} s")
        print(
            f"  elapsed/floor {elapsed / floor:.2f} (target <= 1.10); "
            f"429s from the site: {site.state()['status_counts'].get('429', 0)}"
        )
        print(f"  at ezyVet's real limits: about {elapsed * speedup / 60:.1f} min")

        full_calls, watermark = full.calls, full.watermark
        for share in (args.changes / 10, args.changes, args.changes * 10):
            changes = max(1, round(args.clients * share))
            # ezyVet stamps whole seconds: edit in a later second than the last pull began.
            time.sleep(1.1)
            site.mutate_random(changes)
            delta, elapsed, clients = run_pull(client, watermark)
            print(f"delta after {changes} changes ({share:.1%} of clients)")
            print(
                f"  requests {delta.calls} ({delta.calls / changes:.2f} per change; "
                f"full pull {full_calls}), clients {clients}, elapsed {elapsed:.1f} s"
            )
            watermark = delta.watermark
    finally:
        client.close()
        site.stop()


if __name__ == "__main__":
    main()
