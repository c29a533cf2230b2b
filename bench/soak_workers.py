"""The WriteBack soak's Celery workers: real ``celery worker`` processes on every queue, each
in its own process group (so SIGKILL takes the pool's children too, as a crashed machine
would). A worker that dies without the bench killing it is noticed and said, with the end of
its log, at once: on start-up (it never says "ready") and afterwards (``casualties``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "sync,pull,writeback,bulk,default"  # the product's queues (vetsync/settings.py)


class WorkerDied(RuntimeError):
    pass


class Workers:
    def __init__(self, logs: Path, concurrency: int) -> None:
        self.logs = logs
        self.concurrency = concurrency
        self.app = "vetsync"
        self.env: dict[str, str] = {}
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.started = 0
        self.log_files: list[Path] = []
        self.died: list[str] = []  # died on their own, never killed by the bench

    def deliveries_taken(self) -> int:
        """``writeback_deliver`` tasks the workers have taken so far (from their INFO logs)."""
        pattern = re.compile(rb"writeback_deliver\[[^\]]+\] received")
        return sum(len(pattern.findall(log.read_bytes())) for log in self.log_files)

    def restart_all(self, count: int, app: str, env: dict[str, str]) -> None:
        self.stop_all()
        self.app, self.env = app, env
        for _ in range(count):
            self.start()

    def start(self, queues: str = QUEUES, concurrency: int | None = None) -> str:
        self.started += 1
        name = f"soak{self.started}"
        log = self.logs / f"{name}.log"
        self.log_files.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    self.app,
                    "worker",
                    "--loglevel=INFO",
                    f"--concurrency={concurrency or self.concurrency}",
                    "-Q",
                    queues,
                    "-n",
                    f"{name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = proc
        deadline = time.monotonic() + 90
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                what = (
                    f"exited with code {proc.returncode}"
                    if proc.poll() is not None
                    else ("was not ready after 90 s")
                )
                self.running.pop(name)
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                raise WorkerDied(f"Worker {name} {what} at start-up:\n{self.tail(log)}")
            time.sleep(0.1)
        return name

    @staticmethod
    def tail(log: Path, lines: int = 25) -> str:
        """The log's end, from its last unrecoverable error when there is one (a pool's
        children keep logging after the main process's error)."""
        text = log.read_text(errors="replace").splitlines()
        fatal = [i for i, line in enumerate(text) if "Unrecoverable error" in line]
        start = fatal[-1] if fatal else max(len(text) - lines, 0)
        return "\n".join(text[start : start + lines])

    def casualties(self) -> list[str]:
        """Workers that died since the last look, each said on stdout with its log's end."""
        dead = [name for name, proc in self.running.items() if proc.poll() is not None]
        for name in dead:
            proc = self.running.pop(name)
            self.died.append(name)
            log = self.logs / f"{name}.log"
            print(
                f"  !! WORKER {name} DIED on its own (exit code {proc.returncode}); its log "
                f"ends:\n{self.tail(log)}",
                flush=True,
            )
        return dead

    def kill(self, name: str) -> None:
        proc = self.running.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.running.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.running.clear()
