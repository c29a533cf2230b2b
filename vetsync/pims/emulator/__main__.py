"""``python -m vetsync.pims.emulator``: serve an emulated ezyVet site until interrupted."""

from __future__ import annotations

import argparse

from vetsync.pims.emulator.auth import EmulatorCredentials
from vetsync.pims.emulator.server import EzyVetEmulator


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
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
