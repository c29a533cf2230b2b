"""`make serve` as production runs it, behind a TLS-terminating proxy (which sets
X-Forwarded-Proto: https, so SECURE_SSL_REDIRECT stays on): it starts on free ports, answers
/healthz, serves hashed static files with long cache headers, shows a page in Chromium, and
Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.servers import free_port, redis_server

ROOT = Path(__file__).resolve().parents[2]
PROXY = {"X-Forwarded-Proto": "https"}  # what the TLS proxy in front adds


def processes_marked(mark: str) -> list[int]:
    """Every live process whose environment carries ``mark`` (make serve's and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def worker_niceness(pids: list[int], queue: str) -> set[int]:
    """The niceness of each of ``pids`` that is a Celery worker of ``queue`` (``-Q queue``)."""
    found = set()
    for pid in pids:
        try:
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            continue
        if b"-Q" in argv and argv[argv.index(b"-Q") + 1] == queue.encode():
            found.add(int(stat.rsplit(")", 1)[1].split()[16]))  # field 19: nice
    return found


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    mark: str


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as (_, url):
        yield url


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Iterator[Served]:
    port, mark = free_port(), f"smoke-{uuid.uuid4().hex}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))},
        "SECRET_KEY": "smoke-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEF",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'vetsync.sqlite3'}",
        "REDIS_URL": redis_url,
        "BIND": f"127.0.0.1:{port}",
        "VETSYNC_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "WEB_CONCURRENCY": "2",
        **{f"CELERY_CONCURRENCY_{q}": "1" for q in ("SYNC", "PULL", "WRITEBACK", "DEFAULT")},
        "SERVE_SMOKE_MARK": mark,
        # The TLS proxy this test plays: its X-Forwarded-Proto is trusted only when configured.
        "TRUST_X_FORWARDED_PROTO": "1",
        "PY": sys.executable,
    }
    env.pop("DEBUG", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/serve.py"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    served = Served(f"http://127.0.0.1:{port}", proc, log, mark)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in processes_marked(mark):
            os.kill(pid, signal.SIGKILL)


def wait_healthy(served: Served, timeout: float = 120) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert served.proc.poll() is None, served.log.read_text()[-3000:]
        try:
            response = requests.get(f"{served.url}/healthz", headers=PROXY, timeout=20)
            if response.status_code == 200:
                return response
        except requests.RequestException:  # not listening yet, or busy starting up
            pass
        time.sleep(0.5)
    pytest.fail(f"make serve never answered /healthz:\n{served.log.read_text()[-3000:]}")


def test_make_serve_runs_as_production_and_ctrl_c_stops_everything(
    served: Served, browser: Any
) -> None:
    health = wait_healthy(served).json()
    assert (health["database"], health["broker"]) == ("ok", "ok")

    # Without the proxy's header, production sends the browser to https.
    plain = requests.get(f"{served.url}/healthz", allow_redirects=False, timeout=20)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://")

    login = requests.get(f"{served.url}/accounts/login/", headers=PROXY, timeout=20)
    assert login.status_code == 200
    css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', login.text)
    assert css, "the page links a hashed stylesheet (collectstatic's manifest)"
    static = requests.get(
        served.url + css.group(1), headers={**PROXY, "Accept-Encoding": "gzip"}, timeout=20
    )
    assert static.status_code == 200
    assert "max-age=315360000" in static.headers["Cache-Control"]
    assert "immutable" in static.headers["Cache-Control"]
    assert static.headers.get("Content-Encoding") == "gzip"

    context = browser.new_context(extra_http_headers=PROXY)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.goto(f"{served.url}/accounts/login/")
        assert page.locator("#id_username").is_visible()
        assert page.locator("#id_password").is_visible()
        assert page.evaluate("document.styleSheets.length") >= 1
        assert errors == []
    finally:
        context.close()

    marked = processes_marked(served.mark)
    assert len(marked) >= 8  # supervisor, web, five workers, beat
    # First copies yield the cores to what people wait on; live work runs at normal priority.
    assert worker_niceness(marked, "bulk") == {10}
    assert worker_niceness(marked, "writeback") == {0}
    served.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert served.proc.wait(timeout=60) == 0, served.log.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while processes_marked(served.mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_marked(served.mark) == []
    log = served.log.read_text()
    assert "serve           | stopped" in log
    workers = ("worker-sync", "worker-pull", "worker-writeback", "worker-bulk", "worker-default")
    for name in ("web", *workers):
        assert f"\n{name:<16}| " in log, f"{name} logged nothing"
