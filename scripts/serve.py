#!/usr/bin/env python3
"""`make serve`: VetSync as it runs in production, in one terminal.

Refuses to start, one line for each, without SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL or
REDIS_URL. Then, with DEBUG off: `migrate`, `collectstatic` (hashed, compressed files that
WhiteNoise serves), and these processes, each line of their logs on stdout prefixed with
the process's name:

    web              gunicorn (WEB_CONCURRENCY processes, on BIND, default 127.0.0.1:8000)
    worker-<queue>   a Celery worker per queue (sync, pull, writeback, bulk, default), its
                     concurrency from CELERY_CONCURRENCY_<QUEUE>, its niceness from
                     CELERY_NICE_<QUEUE> (bulk 10, the others 0)
    beat             Celery beat

Ctrl-C (SIGINT) or SIGTERM stops them all (a second Ctrl-C kills at once). A worker or beat
that dies is started again (a Celery worker can die when Redis restarts under it), up to
RESTARTS_PER_MINUTE times a minute each; the web server dying, or a process dying more often
than that, stops them all. Every process writes its metrics to PROMETHEUS_MULTIPROC_DIR (emptied at
start), so /metrics shows the workers' figures too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "SECRET_KEY": "a long random string (python -c 'import secrets; print(secrets.token_hex(32))')",
    "ALLOWED_HOSTS": "the host names VetSync answers to, comma-separated",
    "DATABASE_URL": "postgres://user@host:5432/vetsync",
    "REDIS_URL": "redis://host:6379/0 (Celery broker, results and cache)",
}
# Default concurrency. Two bulk processes: a first copy spends much of its time waiting on its
# site (ezyVet's per-site rate limits, the network), so one site's copy is fetched while
# another's is applied.
QUEUES = {"sync": 1, "pull": 2, "writeback": 4, "bulk": 2, "default": 2}
# Default niceness (CELERY_NICE_<QUEUE> overrides): a first copy is minutes of CPU that nobody
# waits on by the second, so when the cores are busy the kernel gives them first to what
# people do wait on (pages, agents' answers, writebacks, live clinics' deltas).
NICENESS = {"bulk": 10}
STOP_TIMEOUT = float(os.environ.get("SERVE_STOP_TIMEOUT", "30"))
RESTARTS_PER_MINUTE = 3
_print_lock = threading.Lock()


def say(name: str, line: str) -> None:
    with _print_lock:
        sys.stdout.write(f"{name:<16}| {line}\n")
        sys.stdout.flush()


def missing_settings(env: dict[str, str]) -> list[str]:
    return [
        f"make serve: {name} is not set: {hint}"
        for name, hint in REQUIRED.items()
        if not env.get(name, "").strip()
    ]


def commands(python: str, var_dir: Path) -> dict[str, list[str]]:
    celery = [python, "-m", "celery", "-A", "vetsync", "--quiet"]
    procs = {
        "web": [
            python,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "scripts" / "gunicorn.conf.py"),
            "vetsync.wsgi:application",
        ]
    }
    for queue, default in QUEUES.items():
        concurrency = os.environ.get(f"CELERY_CONCURRENCY_{queue.upper()}", str(default))
        niceness = os.environ.get(f"CELERY_NICE_{queue.upper()}", str(NICENESS.get(queue, 0)))
        procs[f"worker-{queue}"] = [
            *(["nice", "-n", niceness] if niceness.strip() not in ("", "0") else []),
            *celery,
            "worker",
            "--loglevel=INFO",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            f"--concurrency={concurrency}",
        ]
    procs["beat"] = [
        *celery,
        "beat",
        "--loglevel=INFO",
        "-s",
        str(var_dir / "celerybeat-schedule"),
    ]
    return procs


def pump(name: str, proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        say(name, line.rstrip("\n"))


class Supervisor:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.argv: dict[str, list[str]] = {}
        self.restarts: dict[str, list[float]] = {}
        self.stopping = threading.Event()
        self.kill_now = False

    def start(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(  # noqa: S603 (our own argv)
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches only us; we stop each group in order
        )
        self.procs[name] = proc
        self.argv[name] = argv
        threading.Thread(target=pump, args=(name, proc), daemon=True).start()
        say("serve", f"started {name} (pid {proc.pid})")

    def on_signal(self, signum: int, frame: object) -> None:
        if self.stopping.is_set():
            self.kill_now = True
        self.stopping.set()

    def watch(self) -> int:
        """Wait for a signal or for a process to end; then stop the others."""
        code = 0
        while not self.stopping.wait(0.5):
            for name, proc in list(self.procs.items()):
                if proc.poll() is None:
                    continue
                if self.may_restart(name):
                    say("serve", f"{name} exited with code {proc.returncode}: starting it again")
                    self.start(name, self.argv[name])
                    continue
                say("serve", f"{name} exited with code {proc.returncode}: stopping all")
                code = 1
                self.stopping.set()
                break
        self.stop()
        return code

    def may_restart(self, name: str) -> bool:
        if name == "web":
            return False
        now = time.monotonic()
        recent = [t for t in self.restarts.get(name, []) if t > now - 60]
        self.restarts[name] = [*recent, now]
        return len(recent) < RESTARTS_PER_MINUTE

    def signal_all(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    def stop(self) -> None:
        say("serve", "stopping web, workers and beat…")
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and not self.kill_now:
            if all(proc.poll() is not None for proc in self.procs.values()):
                break
            time.sleep(0.2)
        # Whatever is left, and any child a process left behind in its group.
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        say("serve", "stopped")


def release(python: str, env: dict[str, str]) -> bool:
    """Migrations and static files, before anything serves."""
    for step in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v", "0"]):
        done = subprocess.run(  # noqa: S603 (our own argv)
            [python, "manage.py", *step],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in done.stdout.splitlines():
            say(step[0], line)
        if done.returncode != 0:
            say("serve", f"{step[0]} failed (exit {done.returncode}); not starting")
            return False
    return True


def main() -> int:
    env = dict(os.environ)
    problems = missing_settings(env)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2
    python = env.get("PY") or sys.executable
    var_dir = Path(env.get("VETSYNC_VAR_DIR") or ROOT / "var")
    metrics_dir = var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.update(
        {
            "DEBUG": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    supervisor = Supervisor(env)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    if not release(python, env):
        return 1
    if supervisor.stopping.is_set():
        return 0
    for name, argv in commands(python, var_dir).items():
        supervisor.start(name, argv)
    bind = env.get("BIND", "127.0.0.1:8000")
    say("serve", f"VetSync on http://{bind} (DEBUG off). Ctrl-C stops everything.")
    return supervisor.watch()


if __name__ == "__main__":
    sys.exit(main())
