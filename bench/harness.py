"""What every benchmark here shares: one child process per database backend.

Each child runs with production settings (DEBUG would log every query and skew the
figures) on its own SQLite file or on a throwaway PostgreSQL database, created at
BENCH_POSTGRES_URL's server (default postgres://postgres@127.0.0.1:5432/postgres) and
dropped afterwards; an unreachable server is reported and skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def backends(choice: str) -> list[str]:
    return ["sqlite", "postgres"] if choice == "both" else [choice]


def run_child(
    backend: str,
    script: str,
    args: Sequence[str],
    *,
    var_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> None:
    """Run ``script --child args…`` against ``backend``; print a skip line if it is absent."""
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "VETSYNC_VAR_DIR": str(var_dir / f"var-{backend}"),
        # DEBUG off serves hashed static files: pages need collectstatic's manifest.
        "STATIC_ROOT": str(var_dir / f"static-{backend}"),
        **(extra_env or {}),
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    db_name = f"vetsync_bench_{Path(script).stem}_{os.getpid()}"
    if backend == "postgres":
        created = subprocess.run(
            ["psql", PG_ADMIN, "-qc", f"CREATE DATABASE {db_name}"], capture_output=True
        )
        if created.returncode != 0:
            print("== postgres: not reachable, skipped")
            return
        env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
    print(f"== {backend}", flush=True)
    try:
        subprocess.run([sys.executable, script, "--child", *args], env=env, check=True, cwd=ROOT)
    finally:
        if backend == "postgres":
            subprocess.run(
                ["psql", PG_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {db_name}"],
                capture_output=True,
            )
