"""What the fleet bench measures while it runs: each process's CPU time and peak memory (from
/proc, Linux), and the oldest data any live clinic holds.

CPU is user + system time per process, sampled every few seconds; a process that exits keeps
the time it had at its last sample (what it spent after that is lost, a few seconds' worth at
most). Processes are grouped by name: each of `make serve`'s processes is a session leader
(``start_new_session``), so its pool's children are found by session id; PostgreSQL's backends
by ``pg_stat_activity`` for the bench's database.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(session id, CPU seconds) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3): session is field 6, utime 14, stime 15.
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), MiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


@dataclass
class ProcessSampler:
    """CPU seconds and peak RSS by process name, for sessions and for loose pids."""

    sessions: dict[int, str] = field(default_factory=dict)  # session id -> name
    loose: Callable[[], dict[int, str]] = dict  # pid -> name, asked at every sample
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> last CPU seconds
    names: dict[int, str] = field(default_factory=dict)  # pid -> name
    peaks: dict[int, float] = field(default_factory=dict)  # pid -> peak RSS MiB
    leaders: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self) -> None:
        found: dict[int, str] = {}
        for pid in all_pids():
            stat = proc_stat(pid)
            if stat is not None and stat[0] in self.sessions:
                found[pid] = self.sessions[stat[0]]
                if pid == stat[0]:
                    self.leaders.add(pid)
        found.update(self.loose())
        with self.lock:
            for pid, name in found.items():
                stat = proc_stat(pid)
                if stat is None:
                    continue
                self.names[pid] = name
                self.cpu[pid] = stat[1]
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak_rss_mib(pid))

    def cpu_by_name(self) -> dict[str, float]:
        with self.lock:
            totals: dict[str, float] = defaultdict(float)
            for pid, seconds in self.cpu.items():
                totals[self.names[pid]] += seconds
            return dict(totals)

    def memory_by_name(self) -> dict[str, tuple[float, float, int]]:
        """name -> (the main process's peak MiB, the largest other process's, how many others):
        for a Celery worker, its pool's children; for gunicorn, its workers."""
        with self.lock:
            grouped: dict[str, list[tuple[bool, float]]] = defaultdict(list)
            for pid, peak in self.peaks.items():
                grouped[self.names[pid]].append((pid in self.leaders, peak))
        result = {}
        for name, rows in grouped.items():
            main = max((p for leader, p in rows if leader), default=0.0)
            others = [p for leader, p in rows if not leader]
            result[name] = (main, max(others, default=0.0), len(others))
        return result


class Every(threading.Thread):
    """Calls ``work`` every ``seconds`` until stopped; an error is kept and ends the loop."""

    def __init__(self, name: str, seconds: float, work: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.seconds = seconds
        self.work = work
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                self.work()
            except BaseException as exc:
                self.error = exc
                return
            self.halt.wait(max(0.0, self.seconds - (time.monotonic() - started)))

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=60)


AGES_SQL = """
SELECT i.connector, c.id, EXTRACT(EPOCH FROM now() - MAX(COALESCE(r.sent_at, r.created_at)))
FROM clinics_clinic c
JOIN clinics_integration i ON i.clinic_id = c.id
JOIN records_syncrun r ON r.clinic_id = c.id AND r.status = 'succeeded'
WHERE i.status = 'live'
GROUP BY i.connector, c.id
"""


@dataclass
class AgeWatch:
    """The oldest data of live clinics at every look (seconds, wall clock): a clinic is live
    from its first successful run; its data are as old as the newest run it applied (an ezyVet
    pull's start, an agent batch's ``sent_at``)."""

    failing: set[int] = field(default_factory=set)  # clinic ids whose site fails on purpose
    samples: list[tuple[float, float, float, float]] = field(default_factory=list)
    # (monotonic time, oldest healthy ezyVet, oldest agent, oldest of the failing sites)

    def look(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(AGES_SQL)
            rows = cursor.fetchall()
        ezy = [
            float(age) for kind, cid, age in rows if kind == "ezyvet" and cid not in self.failing
        ]
        agent = [float(age) for kind, cid, age in rows if kind != "ezyvet"]
        failing = [float(age) for kind, cid, age in rows if cid in self.failing]
        self.samples.append(
            (
                time.monotonic(),
                max(ezy, default=0.0),
                max(agent, default=0.0),
                max(failing, default=0.0),
            )
        )

    def covers(self, since: float, until: float) -> bool:
        return any(since <= s[0] <= until for s in self.samples)

    def oldest(self, since: float, until: float) -> tuple[float, float, float]:
        window = [s for s in self.samples if since <= s[0] <= until]
        return (
            max((s[1] for s in window), default=0.0),
            max((s[2] for s in window), default=0.0),
            max((s[3] for s in window), default=0.0),
        )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]
