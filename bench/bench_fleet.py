"""Benchmark: a fleet of ezyVet sites and agent clinics on one deployment, as `make serve` runs it.

PostgreSQL (a throwaway database at BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432/postgres) and the bench's own redis-server; `make serve`'s
processes (scripts/serve.py: gunicorn, a Celery worker per queue, beat) and the ezyVet sites in
one emulator process. The fleet (sizes pinned by seed, bench/fleet_world.py):

- ``--sites`` ezyVet sites (client counts log-normal, median 1,000, capped at 10,000: about
  1.5 million at 1,000 sites), onboarded in ``--waves`` waves ``--wave-gap`` simulated minutes
  apart (credentials uploaded, marked live; the dispatcher takes the first copies);
- ``--agents`` agent clinics posting a small delta through the agent API every ``--agent-every``
  simulated minutes (their first copies are bench_agent.py's subject, not this one's);
- 1 % of each clinic's clients change an hour (``/_emulator/mutate``; the agents' deltas);
- one writeback a second per 1,000 ezyVet sites, in simulated time (prescriptions approved by
  the clinics' vets, each a ``POST v1/externalprescription``);
- 2 % of the sites failing for 30 simulated minutes (half answer 503, half drop the connection).

The clock is compressed (``--compression`` 10: an hour in six minutes): the integrations' pull
interval, ezyVet's rate window (VetSync's limiter and the emulator's), the pull dispatcher's and
the run sweep's beat ticks, a failing site's back-off and the agents' and changes' rhythm are
all divided by it, so each
simulated hour holds an hour's work; latencies (writeback) are wall-clock. Phases: onboarding
until every site's first copy is in; ``--hours`` simulated hours of steady state (the fault
window inside it); then every site made due at once, timed until each has a new delta (the
fleet's hourly cycle of deltas).

Prints: the cycle's time; the oldest live clinic's data age (simulated minutes); writeback
commit -> delivered p50/p95/max; 429 answers; CPU-seconds per clinic per simulated hour and by
process; first copies' CPU per 1,000 clients; database size per 1,000 clinics; each process's
peak RSS. Targets (at 1,000 + 1,000): cycle <= 10 min on 2 cores, data age <= 75 min, writeback
p95 <= 2 s, 0 429s. Prints figures; asserts nothing.

    python bench/bench_fleet.py --sites 200 --agents 200 --hours 2      # what the README uses
    python bench/bench_fleet.py --quick   # 100 + 100 small clinics, compression 12, in minutes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fleet_run import Fleet  # noqa: E402  (bench/ is on the path above)
from redis_server import RedisServer  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# Beat entries whose tick is part of the simulated clock (the rest stay wall-clock: heartbeats,
# the writeback sweep, whose latency is measured in real seconds).
SCALED_TASKS = ("records.tasks.ezyvet_pulls_due", "records.tasks.sync_runs_sweep")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--client-scale", type=float, default=1.0, help="multiplies every size")
    parser.add_argument("--compression", type=float, default=10.0, help="simulated s per s")
    parser.add_argument("--interval", type=float, default=60.0, help="pull interval, sim min")
    parser.add_argument("--hours", type=float, default=2.0, help="steady state, sim hours")
    parser.add_argument("--waves", type=int, default=4)
    parser.add_argument("--wave-gap", type=float, default=10.0, help="sim minutes")
    parser.add_argument("--agent-every", type=float, default=5.0, help="sim minutes")
    parser.add_argument("--change-per-hour", type=float, default=0.01)
    parser.add_argument("--writebacks-per-1000", type=float, default=1.0, help="a sim second")
    parser.add_argument("--failing", type=float, default=0.02, help="share of sites")
    parser.add_argument("--fault-minutes", type=float, default=30.0)
    parser.add_argument("--onboarding-limit", type=float, default=40.0, help="wall minutes")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--onboarding-only",
        action="store_true",
        help="stop once every first copy is in (prints the onboarding's time and CPU)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 + 100 clinics at 1/10 size, 18 minutes of steady state (too short for the "
        "data age), a 12-minute fault",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sites, args.agents, args.client_scale = 100, 100, 0.1
        args.compression, args.interval, args.hours = 12.0, 60.0, 0.3
        args.waves, args.wave_gap, args.fault_minutes = 2, 10.0, 12.0
    if args.interval / args.compression < 5:
        parser.error(
            "the pull interval on the wall clock must be at least 5 minutes (the model's floor)"
        )
    return args


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A database of its own on BENCH_POSTGRES_URL's server, dropped afterwards."""
    import psycopg

    name = f"vetsync_bench_fleet_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write_settings(tmp: Path, compression: float) -> None:
    """The product's settings with the beat ticks of the simulated clock scaled."""
    (tmp / "fleet_settings.py").write_text(
        "from vetsync.settings import *  # noqa: F403\n"
        f"for _entry in CELERY_BEAT_SCHEDULE.values():  # noqa: F405\n"
        f"    if _entry['task'] in {SCALED_TASKS!r} and isinstance(_entry['schedule'], float):\n"
        f"        _entry['schedule'] = max(1.0, _entry['schedule'] / {compression})\n"
        # A failing site's back-off (5, 10, 20 … minutes) is on the simulated clock too.
        f"EZYVET_BACKOFF_FIRST = EZYVET_BACKOFF_FIRST / {compression}  # noqa: F405\n"
        f"EZYVET_BACKOFF_MAX = EZYVET_BACKOFF_MAX / {compression}  # noqa: F405\n"
    )


def setup_env(tmp: Path, database_url: str, redis_url: str, compression: float) -> None:
    write_settings(tmp, compression)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "fleet_settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback, as behind a TLS proxy
            "VETSYNC_VAR_DIR": str(tmp / "var"),
            "STATIC_ROOT": str(tmp / "static"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "EZYVET_RATE_WINDOW_SECONDS": str(60 / compression),
            "EZYVET_LIMITER_MARGIN_SECONDS": str(2 / compression),
            "PYTHONPATH": os.pathsep.join(
                [str(tmp), str(ROOT), *filter(None, [os.getenv("PYTHONPATH")])]
            ),
        }
    )
    sys.path.insert(0, str(tmp))


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="vetsync-bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis")
        redis.start()
        try:
            with throwaway_database() as database_url:
                setup_env(tmp, database_url, redis.url, args.compression)
                print(
                    f"Fleet: {args.sites} ezyVet sites + {args.agents} agent clinics on "
                    f"PostgreSQL and Redis (port {redis.port}); load "
                    f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}",
                    flush=True,
                )
                Fleet(args, tmp, redis).run()
        finally:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
