"""The fleet bench's run: its processes, its phases, and what it keeps for the report
(bench/bench_fleet.py says what it is; bench/fleet_report.py prints it)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from fleet_load import AgentFleet, Clock, Prescribing, site_faults
from fleet_measure import AgeWatch, Every, ProcessSampler
from fleet_world import (
    EzyVetClinic,
    agent_clinics_create,
    client_counts,
    ezyvet_clinics_create,
    ezyvet_onboard,
    prescriber_ready,
)
from redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
# The bench's own database connections (libpq's application name): not VetSync's CPU.
BENCH_APP = "vetsync-fleet-bench"


@dataclass
class Marks:
    """Monotonic times of the run's phases, and what was true at each."""

    start: float = 0.0
    all_live: float = 0.0
    steady_end: float = 0.0
    fault_start: float = 0.0
    fault_end: float = 0.0
    herd_start: float = 0.0
    herd_end: float = 0.0
    herd_first: float = 0.0  # the first site's new delta applied
    herd_done: int = 0
    herd_of: int = 0
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # mark -> name -> CPU s
    db_bytes: dict[str, int] = field(default_factory=dict)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # mark -> table -> bytes


class Fleet:
    def __init__(self, args: argparse.Namespace, tmp: Path, redis: RedisServer) -> None:
        self.args = args
        self.tmp = tmp
        self.redis = redis
        self.marks = Marks()
        self.interval = dt.timedelta(minutes=args.interval / args.compression)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ready: list[EzyVetClinic] = []
        self.ready_lock = threading.Lock()
        self.failing: list[EzyVetClinic] = []

    # -- processes -----------------------------------------------------------------------

    def start_sites(self, counts: list[int]) -> str:
        """The emulator's fleet (``--sites``): site n under /site/<n>, its own credentials,
        data, limits and clock of changes, all on the compressed clock."""
        counts_file = self.tmp / "site-clients.json"
        counts_file.write_text(json.dumps(counts))
        a = self.args
        port = free_port()
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "vetsync.pims.emulator", "--port", str(port)),
                *("--sites", str(len(counts)), "--seed", str(a.seed)),
                *("--site-clients-file", str(counts_file)),
                *("--window-seconds", str(60 / a.compression)),
                *("--change-rate", str(a.change_per_hour)),
                *("--change-period", str(3600 / a.compression)),
                # ezyVet has its data before a site is onboarded: its making is not timed.
                "--generate-first",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=(self.tmp / "sites.log").open("wb"),
            start_new_session=True,
        )
        self.processes.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening on " not in line:
            raise RuntimeError(f"The sites did not start: {line!r}; see {self.tmp / 'sites.log'}")
        self.sites_pid = proc.pid
        self.sites_url = f"http://127.0.0.1:{port}"
        return self.sites_url

    def start_serve(self) -> tuple[str, dict[int, str]]:
        """`make serve` (scripts/serve.py) on a free port; its processes by session id."""
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k != "PGAPPNAME"},
            "BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        }
        log = self.tmp / "serve.log"
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "serve.py")],
            env=env,
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        self.serve = proc
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"make serve did not become healthy; see {log}:\n{log.read_text()[-3000:]}"
                )
            time.sleep(1)
        sessions = {}
        for line in log.read_text().splitlines():
            if "| started " in line:
                name, pid = line.split("| started ", 1)[1].rsplit(" (pid ", 1)
                sessions[int(pid.rstrip(")"))] = name
        return url, sessions

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()  # serve.py stops its processes in order
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def loose_pids(self) -> dict[int, str]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name <> %s",
                [BENCH_APP],
            )
            pids = {int(pid): "postgres" for (pid,) in cursor.fetchall()}
        assert self.redis.proc is not None
        return {
            **pids,
            self.redis.proc.pid: "redis",
            self.sites_pid: "emulator",
            os.getpid(): "bench",
        }

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        import django

        os.environ["PGAPPNAME"] = BENCH_APP

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.marks.db_bytes["empty"] = db_bytes()
        args = self.args
        self.ezy_counts = client_counts(args.sites, seed=args.seed, scale=args.client_scale)
        self.agent_counts = client_counts(args.agents, seed=args.seed + 1, scale=args.client_scale)
        sites_url = self.start_sites(self.ezy_counts)
        try:
            self.ezy = ezyvet_clinics_create(
                self.ezy_counts, sites_url=sites_url, interval=self.interval, waves=args.waves
            )
            self.agents = agent_clinics_create(self.agent_counts)
            rng = random.Random(args.seed)
            self.failing = rng.sample(self.ezy, max(1, round(args.failing * len(self.ezy))))
            web_url, sessions = self.start_serve()
            self.sampler = ProcessSampler(sessions=sessions, loose=self.loose_pids)
            self.ages = AgeWatch(failing={c.clinic_id for c in self.failing})
            self.clock = Clock(args.compression, time.monotonic())
            self.marks.start = self.clock.started
            self.say_setup()
            self.load(sites_url, web_url)
        finally:
            self.stop_all()  # whatever happened, even a Ctrl-C in the report

    def say_setup(self) -> None:
        a = self.args
        print(
            f"  clock: compression {a.compression:g} (a simulated hour is "
            f"{60 / a.compression:.1f} wall minutes); pull interval {a.interval:g} sim min "
            f"({self.interval.total_seconds():.0f} s wall); "
            f"ezyVet's rate window {60 / a.compression:.1f} s (180 calls a site, 60 an endpoint)",
            flush=True,
        )
        print(
            f"  ezyVet sites: {len(self.ezy)}, {sum(self.ezy_counts):,} clients (median "
            f"{sorted(self.ezy_counts)[len(self.ezy_counts) // 2]:,}, "
            f"max {max(self.ezy_counts):,}) in "
            f"{a.waves} waves {a.wave_gap:g} sim min apart; agent clinics: {len(self.agents)} "
            f"({sum(self.agent_counts):,} clients) posting every {a.agent_every:g} sim min; "
            f"{a.change_per_hour:.0%} of clients change an hour; failing sites: "
            f"{', '.join(str(c.site) for c in self.failing)} ({a.fault_minutes:g} sim min)",
            flush=True,
        )

    def load(self, sites_url: str, web_url: str) -> None:
        a = self.args
        agents = AgentFleet(web_url, self.agents, a.agent_every, a.change_per_hour, self.clock)
        rate = a.writebacks_per_1000 * len(self.ezy) / 1000 * a.compression
        prescribing = Prescribing(rate, self.prescribable)
        loops = [
            Every("sampler", 2.0, self.sampler.sample),
            Every("ages", 3.0, self.ages.look),
        ]
        threads = [threading.Thread(target=t.run, daemon=True) for t in (agents, prescribing)]
        self.sampler.sample()
        self.marks.cpu["start"] = self.sampler.cpu_by_name()
        for thread in [*loops, *threads]:
            thread.start()
        self.loads = (agents, prescribing)
        try:
            self.onboard(sites_url)
            if a.onboarding_only:
                return
            self.steady(sites_url)
            self.herd()
        finally:
            agents.halt.set()
            prescribing.halt.set()
            for thread in threads:
                thread.join(timeout=120)
            if not a.onboarding_only:
                self.settle()
            for loop in loops:
                loop.stop()
            if not a.onboarding_only:
                self.sampler.sample()
                self.marks.cpu["end"] = self.sampler.cpu_by_name()
                self.marks.db_bytes["end"] = db_bytes()
                self.loop_errors = [f"{loop.name}: {loop.error!r}" for loop in loops if loop.error]
                from fleet_report import report

                report(self)

    def onboard(self, sites_url: str) -> None:
        """Waves of sites go live; wait until every site's first copy is in."""
        from records.models import SyncRun

        a = self.args
        waiting = list(self.ezy)
        limit = time.monotonic() + a.onboarding_limit * 60
        while True:
            now = self.clock.sim_minutes()
            for clinic in [c for c in waiting if c.live_at is None and c.wave * a.wave_gap <= now]:
                ezyvet_onboard(clinic, seed=a.seed)
                clinic.live_at = time.monotonic()
            copied = set(
                SyncRun.objects.filter(
                    full=True, status=SyncRun.Status.SUCCEEDED, source="ezyvet"
                ).values_list("clinic_id", flat=True)
            )
            for clinic in [c for c in waiting if c.clinic_id in copied]:
                waiting.remove(clinic)
                if prescriber_ready(clinic):
                    with self.ready_lock:
                        self.ready.append(clinic)
            if not waiting:
                break
            if time.monotonic() > limit:
                raise RuntimeError(
                    f"{len(waiting)} first copies not in after {a.onboarding_limit:g} wall minutes"
                )
            time.sleep(2)
        self.marks.all_live = time.monotonic()
        self.sampler.sample()
        self.marks.cpu["all_live"] = self.sampler.cpu_by_name()
        self.marks.db_bytes["all_live"] = db_bytes()
        self.marks.tables["all_live"] = table_bytes()
        self.say_onboarded()

    def say_onboarded(self) -> None:
        """The onboarding's wall time, its rate and where the CPU went (every process)."""
        wall = self.marks.all_live - self.marks.start
        a, b = self.marks.cpu["start"], self.marks.cpu["all_live"]
        spent = sorted(((b[n] - a.get(n, 0.0), n) for n in b), reverse=True)
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(
            f"  onboarding: every first copy in after {self.clock.sim_minutes():.0f} sim min = "
            f"{wall:.0f} s wall, {sum(self.ezy_counts) / wall:.0f} clients/s; CPU-s: "
            + ", ".join(f"{n} {s:.0f}" for s, n in spent)
            + f" ({sum(s for s, _ in spent) / wall:.2f} cores); {load}",
            flush=True,
        )
        tasks = task_seconds(self.tmp / "serve.log")
        print(
            "  onboarding's Celery tasks (count, wall s in the worker): "
            + ", ".join(f"{name} {n} in {secs:.0f} s" for name, (n, secs) in sorted(tasks.items())),
            flush=True,
        )

    def prescribable(self) -> list[EzyVetClinic]:
        with self.ready_lock:
            return [c for c in self.ready if c not in self.failing]

    def steady(self, sites_url: str) -> None:
        a = self.args
        begin = self.clock.sim_minutes()
        # The fault 15 sim minutes in (a quarter of the way into a steady state under an hour).
        fault_at, end = begin + min(15, a.hours * 15), begin + a.hours * 60
        self.wait_until(fault_at)
        down = self.clock.wall(a.fault_minutes)
        for n, clinic in enumerate(self.failing):
            site_faults(sites_url, clinic.site, "server_error" if n % 2 == 0 else "drop", down)
        self.marks.fault_start = time.monotonic()
        self.wait_until(fault_at + a.fault_minutes)
        self.marks.fault_end = time.monotonic()
        self.wait_until(end)
        self.marks.steady_end = time.monotonic()
        self.sampler.sample()
        self.marks.cpu["steady_end"] = self.sampler.cpu_by_name()
        self.marks.db_bytes["steady_end"] = db_bytes()
        self.marks.tables["steady_end"] = table_bytes()

    def wait_until(self, sim_minutes: float) -> None:
        while self.clock.sim_minutes() < sim_minutes:
            if self.serve.poll() is not None:
                raise RuntimeError("make serve stopped; see serve.log")
            time.sleep(1)

    def herd(self) -> None:
        """Every live site due at once: how long the fleet's hourly cycle of deltas takes."""
        from django.utils import timezone

        from clinics.models import Connector, Integration
        from records.models import SyncRun

        healthy = [c.clinic_id for c in self.ezy if c not in self.failing]
        self.marks.herd_of = len(healthy)
        self.marks.cpu["herd_start"] = self.sampler.cpu_by_name()
        self.marks.herd_start = time.monotonic()
        started = timezone.now()
        Integration.objects.filter(connector=Connector.EZYVET, clinic_id__in=healthy).update(
            next_pull_at=started
        )
        limit = time.monotonic() + 30 * 60
        while time.monotonic() < limit:
            done = (
                SyncRun.objects.filter(
                    clinic_id__in=healthy, status=SyncRun.Status.SUCCEEDED, created_at__gte=started
                )
                .values("clinic_id")
                .distinct()
                .count()
            )
            self.marks.herd_done = done
            if done and not self.marks.herd_first:
                self.marks.herd_first = time.monotonic()
            if done >= len(healthy):
                break
            time.sleep(1)
        self.marks.herd_end = time.monotonic()
        self.marks.cpu["herd_end"] = self.sampler.cpu_by_name()

    def settle(self) -> None:
        """Give the writebacks committed last a minute to be delivered."""
        from prescriptions.models import WritebackItem

        deadline = time.monotonic() + 60
        pending = WritebackItem.objects.exclude(status=WritebackItem.Status.DELIVERED).exclude(
            clinic_id__in=[c.clinic_id for c in self.failing]
        )
        while pending.exists() and time.monotonic() < deadline:
            time.sleep(1)


def task_seconds(log: Path) -> dict[str, tuple[int, float]]:
    """Each Celery task's count and summed run time so far, from the workers' log lines."""
    found: dict[str, tuple[int, float]] = {}
    for match in re.finditer(r"Task ([\w.]+)\[[^]]+\] succeeded in ([\d.]+)s", log.read_text()):
        name = match[1].rsplit(".", 1)[-1]
        count, seconds = found.get(name, (0, 0.0))
        found[name] = (count + 1, seconds + float(match[2]))
    return found


def db_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        (size,) = cursor.fetchone()
    return int(size)


def table_bytes() -> dict[str, int]:
    """Every table's size with its indexes and TOAST."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
        return {name: int(size) for name, size in cursor.fetchall()}
