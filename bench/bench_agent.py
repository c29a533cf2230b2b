"""Benchmark: the clinic-side agent end to end, against a running VetSync.

A VetSync web process (``manage.py runserver --noreload``, production settings) and a Celery
worker run on a throwaway database; a Cornerstone-like practice database is generated; the
agent (``python -m vetsync.agent``, its own process) talks to VetSync over HTTP.

1. First copy: the agent's first ``once`` on a practice of ``--clients`` clients (10,000),
   sent as a multi-part full extract of 1,000 clients a part and applied by the worker; wall
   time from start until every part is applied, and clients a second.
2. Change latency: the agent runs as a service (``run``) at ``--interval`` (120 s, the
   default); ``--changes`` (40) e-mail changes are made in the practice database at random
   moments over ``--window`` intervals (5); for each, the time from the change until VetSync
   holds the new address (what the client's page shows) is taken. p50/p95/max.

    python bench/bench_agent.py                # 10,000 clients; interval 120 s (~14 min)
    python bench/bench_agent.py --quick        # 1,000 clients; interval 5 s (scaled down)

The database is a SQLite file unless BENCH_DATABASE_URL names a PostgreSQL server, where a
database is created and dropped. The broker is the filesystem one (no server) unless
BENCH_REDIS_URL is given. BENCH_AGENT_PYTHON runs the agent with another Python where its wheel
is installed (e.g. a 3.10 virtualenv), outside the repository. Prints figures; exits non-zero
only when a change never arrives or the first copy is incomplete.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vetsync.agent.demo import cornerstone_create  # noqa: E402  (ROOT is put on the path above)

EXAMPLES = ROOT / "vetsync" / "agent" / "examples"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def database(tmp: Path) -> Iterator[str]:
    given = os.environ.get("BENCH_DATABASE_URL", "")
    if not given.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp / 'vetsync.sqlite3'}"
        return
    import psycopg

    name = f"vetsync_bench_agent_{os.getpid()}"
    with psycopg.connect(given, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield given.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(given, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_env(tmp: Path, database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback, as behind a TLS proxy
        "VETSYNC_VAR_DIR": str(tmp / "var"),
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    if os.environ.get("BENCH_REDIS_URL"):
        env["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
    return env


def setup_clinic(env: dict[str, str]) -> str:
    """Migrate, make a Cornerstone clinic on DataPoint, and return its agent token."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True
    )
    script = (
        "from clinics.models import Clinic, Connector, Integration\n"
        "from clinics.services import integration_issue_agent_token\n"
        "clinic = Clinic.objects.create(name='Bench Cornerstone', slug='bench-cornerstone')\n"
        "i = Integration.objects.create(clinic=clinic, connector=Connector.DATAPOINT)\n"
        "print(integration_issue_agent_token(integration=i, actor=None))\n"
    )
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return made.stdout.strip().splitlines()[-1]


@contextmanager
def vetsync(env: dict[str, str], port: int, logs: Path) -> Iterator[None]:
    web_log, worker_log = (logs / "web.log").open("w"), (logs / "worker.log").open("w")
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env,
            cwd=ROOT,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            # One worker on every queue, as `make run` starts it (applies go to the sync queue).
            [
                *(sys.executable, "-m", "celery", "-A", "vetsync", "worker", "-c", "1"),
                *("-l", "warning", "-Q", "sync,pull,writeback,bulk,default"),
            ],
            env=env,
            cwd=ROOT,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("VetSync did not start; see web.log") from None
                time.sleep(0.2)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def write_config(tmp: Path, *, port: int, token: str, db: Path, interval: float) -> Path:
    path = tmp / "agent.toml"
    path.write_text(
        f'[vetsync]\nurl = "http://127.0.0.1:{port}"\ntoken = "{token}"\nsource = "datapoint"\n'
        f'[practice]\nkind = "sql"\nurl = "sqlite:///{db}"\n'
        f'mapping = "{EXAMPLES / "cornerstone.toml"}"\n'
        f"[schedule]\ninterval = {interval}\n[delivery]\npart_size = 1000\n"
        f'[writeback]\nwriter = "none"\n',
        encoding="utf-8",
    )
    return path


def vetsync_query(env: dict[str, str], sql: str) -> list[tuple]:
    """Read VetSync's database directly (what its pages render from)."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()  # type: ignore[arg-type]


def agent_command() -> list[str]:
    """The agent from this checkout, or (BENCH_AGENT_PYTHON) from a Python where its wheel is
    installed, e.g. a 3.10 virtualenv: then it runs outside the repository, as at a clinic."""
    return [os.environ.get("BENCH_AGENT_PYTHON", sys.executable), "-m", "vetsync.agent"]


def agent_place(env: dict[str, str], config: Path) -> dict[str, Any]:
    if "BENCH_AGENT_PYTHON" not in os.environ:
        return {"env": env, "cwd": ROOT}
    outside = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    return {"env": outside, "cwd": config.parent}


def first_copy(env: dict[str, str], config: Path, clients: int) -> None:
    started = time.perf_counter()
    result = subprocess.run(
        [*agent_command(), "-c", str(config), "-q", "once"],
        **agent_place(env, config),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stderr[-3000:])
    (count,) = vetsync_query(env, "SELECT count(*) FROM records_client")[0]
    (patients,) = vetsync_query(env, "SELECT count(*) FROM records_patient")[0]
    extracts = vetsync_query(env, "SELECT parts, completed_at IS NOT NULL FROM records_fullextract")
    parts, complete = extracts[0] if extracts else (0, False)
    print(
        f"first copy: {count} clients, {patients} pets in {seconds:.1f} s "
        f"({count / seconds:.0f} clients/s); {parts} parts, complete={bool(complete)}; "
        f"agent exit {result.returncode}",
        flush=True,
    )
    if count != clients or not complete or result.returncode != 0:
        print(result.stderr[-2000:])
        raise SystemExit("the first copy is incomplete")


def latency(env: dict[str, str], config: Path, db: Path, args: argparse.Namespace) -> None:
    rng = random.Random(11)
    agent = subprocess.Popen(
        [*agent_command(), "-c", str(config), "-q", "run"], **agent_place(env, config)
    )
    window = args.window * args.interval
    moments = sorted(rng.uniform(0, window) for _ in range(args.changes))
    targets = rng.sample(range(1, args.clients + 1), args.changes)
    pending: dict[str, tuple[str, float]] = {}
    arrived: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with lock:
                waiting = dict(pending)
            for pims_id, (email, at) in waiting.items():
                rows = vetsync_query(
                    env,
                    "SELECT 1 FROM records_client "
                    f"WHERE pims_id = '{pims_id}' AND email = '{email}'",
                )
                if rows:
                    seen = time.monotonic()
                    with lock:
                        pending.pop(pims_id, None)
                        arrived.append(seen - at)
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    began = time.monotonic()
    try:
        for moment, number in zip(moments, targets, strict=True):
            time.sleep(max(0.0, began + moment - time.monotonic()))
            email = f"changed.{number}.{int(moment * 1000)}@example.org"
            connection = sqlite3.connect(str(db))
            with connection:
                connection.execute(
                    "UPDATE client SET email = ?, last_modified = datetime('now') "
                    "WHERE client_id = ?",
                    (email, f"C-{number}"),
                )
            connection.close()
            with lock:
                pending[f"C-{number}"] = (email, time.monotonic())
        deadline = time.monotonic() + 3 * args.interval + 60
        while pending and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        done.set()
        watcher.join()
        agent.terminate()
        agent.wait(timeout=60)
    report(arrived, len(pending), args.interval)


def report(arrived: list[float], missing: int, interval: float) -> None:
    ordered = sorted(arrived)
    p95 = ordered[max(0, int(len(ordered) * 0.95 + 0.5) - 1)] if ordered else float("nan")
    print(
        f"change latency at interval {interval:g} s: {len(ordered)} changes, "
        f"p50 {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {max(ordered):.1f} s",
        flush=True,
    )
    if missing:
        raise SystemExit(f"{missing} changes never reached VetSync")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 clients, interval 5 s")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--interval", type=float, default=None)
    parser.add_argument("--changes", type=int, default=None)
    parser.add_argument("--window", type=float, default=5, help="in intervals")
    args = parser.parse_args()
    args.clients = args.clients or (1000 if args.quick else 10_000)
    args.interval = args.interval or (5.0 if args.quick else 120.0)
    args.changes = args.changes or (10 if args.quick else 40)
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as name, database(Path(name)) as url:
        tmp = Path(name)
        env = server_env(tmp, url)
        token = setup_clinic(env)
        db = cornerstone_create(tmp / "practice.sqlite3", clients=args.clients)
        port = free_port()
        config = write_config(tmp, port=port, token=token, db=db, interval=args.interval)
        print(
            f"== bench_agent: {args.clients} clients, interval {args.interval:g} s, "
            f"{args.changes} changes over {args.window:g} intervals; "
            f"{'PostgreSQL' if url.startswith('postgres') else 'SQLite'}, "
            f"{'Redis' if 'REDIS_URL' in env else 'filesystem'} broker",
            flush=True,
        )
        with vetsync(env, port, tmp):
            first_copy(env, config, args.clients)
            latency(env, config, db, args)


if __name__ == "__main__":
    main()
