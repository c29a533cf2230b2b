"""``python -m vetsync.pims.emulator``: serve an emulated ezyVet site (or, with ``--sites N``,
a fleet of them under ``/site/<n>/``) until interrupted."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vetsync.pims.emulator.auth import EmulatorCredentials
from vetsync.pims.emulator.server import EzyVetEmulator, FleetEmulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = EmulatorCredentials()
    parser = argparse.ArgumentParser(
        prog="python -m vetsync.pims.emulator", description="Serve an emulated ezyVet v1 site."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--clients", type=int, default=500, help="pet owners to generate")
    parser.add_argument("--seed", type=int, default=1, help="seed for the generated data")
    parser.add_argument(
        "--rate-per-minute", type=int, default=180, help="calls per window, per site"
    )
    parser.add_argument(
        "--endpoint-rate-per-minute", type=int, default=60, help="calls per window, per endpoint"
    )
    parser.add_argument(
        "--window-seconds", type=float, default=60.0, help="length of the rate window"
    )
    parser.add_argument("--token-lifetime", type=int, default=43200, help="seconds")
    parser.add_argument("--partner-id", default=defaults.partner_id)
    parser.add_argument("--partner-name", default=defaults.partner_name)
    parser.add_argument("--client-id", default=defaults.client_id)
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument("--site-uid", default=defaults.site_uid)
    parser.add_argument("--timezone", default="America/Chicago", help="the site's time zone")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    fleet = parser.add_argument_group(
        "fleet",
        "--sites N serves N sites, site n under /site/<n>/ with its own credentials "
        "(GET /_emulator/sites lists them); --clients is then each site's count, or the median",
    )
    fleet.add_argument("--sites", type=int, default=None, help="serve this many sites")
    fleet.add_argument(
        "--site-clients-file",
        type=Path,
        help='JSON: each site\'s client count, a list (site 1 first) or {"<n>": count}',
    )
    fleet.add_argument(
        "--clients-sigma",
        type=float,
        help="draw each site's count from a log-normal (median --clients) with this sigma",
    )
    fleet.add_argument("--max-clients", type=int, default=10_000, help="cap on a drawn count")
    fleet.add_argument(
        "--resident-clients",
        type=int,
        default=100_000,
        help="clients' worth of sites kept live; the others are kept compressed",
    )
    fleet.add_argument(
        "--change-rate",
        type=float,
        default=0.0,
        help="share of each site's clients changed per --change-period (0.01: 1 %%)",
    )
    fleet.add_argument("--change-period", type=float, default=3600.0, help="seconds")
    fleet.add_argument(
        "--generate-first",
        action="store_true",
        help="generate every site's data before listening (else on each site's first call)",
    )
    return parser.parse_args(argv)


def site_clients_from_file(path: Path) -> dict[int, int]:
    """A ``--site-clients-file``: a JSON list (site 1 first) or an object keyed by site."""
    loaded = json.loads(path.read_text())
    if isinstance(loaded, list):
        return {n: int(count) for n, count in enumerate(loaded, start=1)}
    if isinstance(loaded, dict):
        return {int(n): int(count) for n, count in loaded.items()}
    raise SystemExit(f"{path}: expected a JSON list or object of client counts.")


def serve_fleet(args: argparse.Namespace) -> None:
    fleet = FleetEmulator(
        sites=args.sites,
        seed=args.seed,
        clients=args.clients,
        site_clients=site_clients_from_file(args.site_clients_file)
        if args.site_clients_file
        else None,
        clients_sigma=args.clients_sigma,
        max_clients=args.max_clients,
        resident_clients=args.resident_clients,
        change_rate=args.change_rate,
        change_period=args.change_period,
        partner_id=args.partner_id,
        partner_name=args.partner_name,
        rate_per_minute=args.rate_per_minute,
        endpoint_rate_per_minute=args.endpoint_rate_per_minute,
        window_seconds=args.window_seconds,
        token_lifetime=args.token_lifetime,
        timezone=args.timezone,
    )
    fleet.verbose = args.verbose
    if args.generate_first:
        fleet.generate_all()
    url = fleet.bind(args.host, args.port)
    total = sum(site.clients for site in fleet.sites.values())
    print(
        f"ezyVet emulator listening on {url} ({args.sites} sites at {url}/site/<n>, "
        f"{total} clients, seed {args.seed}; credentials: GET {url}/_emulator/sites)",
        flush=True,
    )
    try:
        fleet.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.sites is not None:
        serve_fleet(args)
        return
    credentials = EmulatorCredentials(
        partner_id=args.partner_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        site_uid=args.site_uid,
        partner_name=args.partner_name,
    )
    emulator = EzyVetEmulator(
        clients=args.clients,
        seed=args.seed,
        rate_per_minute=args.rate_per_minute,
        endpoint_rate_per_minute=args.endpoint_rate_per_minute,
        window_seconds=args.window_seconds,
        token_lifetime=args.token_lifetime,
        credentials=credentials,
        timezone=args.timezone,
    )
    emulator.verbose = args.verbose
    url = emulator.bind(args.host, args.port)
    # flush: run.sh shares the terminal with other processes and the line must appear now.
    print(
        f"ezyVet emulator listening on {url} ({args.clients} clients, seed {args.seed}; "
        f"partner_id={credentials.partner_id} client_id={credentials.client_id} "
        f"client_secret={credentials.client_secret} site_uid={credentials.site_uid})",
        flush=True,
    )
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
