"""Benchmark: the web process's memory while it takes an agent's batch body (issue 17).

A generated extract of N clients (1.5 pets each, as bench_sync_first_copy builds them) is
posted to the agent API's view from a file, as a WSGI server hands it over; tracemalloc
reports the peak of Python allocations during the request, as a multiple of the body. The
same body is then read the way the API did before issue 17 (the whole body in memory,
decoded, parsed into dicts): that figure is the comparison. The batch is only taken in
(stored as a queued run, 202); applying it is the worker's job.

    python bench/bench_agent_body.py [--clients 200000]

Prints figures, including the extract's size (which the default AGENT_BATCH_MAX_BYTES must
fit); asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402


def child(n_clients: int, out: Path) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetsync.settings")
    django.setup()
    from bench_sync_first_copy import make_batches
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIRequest
    from django.core.management import call_command

    from clinics.models import Clinic, Connector, Integration
    from clinics.services import integration_issue_agent_token
    from records import api
    from records.models import SyncRun

    call_command("migrate", verbosity=0)
    first, _, _ = make_batches(n_clients, 7, out)
    size = first.stat().st_size
    clinic = Clinic.objects.create(name="Bench", slug="bench")
    integration = Integration.objects.create(clinic=clinic, connector=Connector.SYNCVET)
    token = integration_issue_agent_token(integration=integration)
    api.sync_run_apply_enqueue = lambda *a, **k: None  # the worker's part
    print(f"extract of {n_clients:,} clients: {size:,} bytes ({size / 2**20:.1f} MiB)")
    print(f"AGENT_BATCH_MAX_BYTES default: {settings.AGENT_BATCH_MAX_BYTES:,} bytes")

    with first.open("rb") as stream:
        request = WSGIRequest(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/api/agent/v1/batches",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(size),
                "HTTP_AUTHORIZATION": f"Bearer {token}",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000",
                "wsgi.input": stream,
                "wsgi.url_scheme": "http",
            }
        )
        gc.collect()
        tracemalloc.start()
        started = time.perf_counter()
        response = api.batches(request)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    run = SyncRun.objects.get()
    print(f"answer {response.status_code}, run total {run.total:,}, {elapsed:.2f} s")
    print(f"intake peak (now): {peak / 2**20:.1f} MiB = {peak / size:.2f} x the body")

    gc.collect()
    tracemalloc.start()
    body = first.read_bytes()
    payload = json.loads(body.decode("utf-8"))
    _, before_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del body, payload
    print(
        f"reading it as before (bytes, text, parsed): {before_peak / 2**20:.1f} MiB = "
        f"{before_peak / size:.2f} x the body"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200_000)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.child:
        child(args.clients, Path(args.out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        harness.run_child(
            "sqlite",
            __file__,
            ["--clients", str(args.clients), "--out", tmp],
            var_dir=Path(tmp),
            extra_env={"ALLOWED_HOSTS": "127.0.0.1"},
        )


if __name__ == "__main__":
    main()
