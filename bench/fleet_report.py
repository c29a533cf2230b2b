"""The fleet bench's figures, printed from what the run kept (bench/fleet_run.py)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fleet_measure import pct

VETSYNC = (
    "web",
    "worker-sync",
    "worker-pull",
    "worker-bulk",
    "worker-writeback",
    "worker-default",
    "beat",
    "postgres",
    "redis",
)
EZYVET_SIDE = ("worker-pull", "worker-sync", "worker-bulk", "worker-writeback")


def when(mark: float) -> dt.datetime:
    """A monotonic mark as the database's time."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - mark)


def cpu_between(fleet: Any, first: str, last: str) -> dict[str, float]:
    if first not in fleet.marks.cpu or last not in fleet.marks.cpu:
        raise RuntimeError(f"the run did not reach {last if first in fleet.marks.cpu else first}")
    a, b = fleet.marks.cpu.get(first, {}), fleet.marks.cpu.get(last, {})
    return {name: b.get(name, 0.0) - a.get(name, 0.0) for name in b}


def report(fleet: Any) -> None:
    print("== results", flush=True)
    for part in (cycle, ages, writebacks, answers, cpu, first_copies, database, memory, errors):
        try:
            part(fleet)
        except Exception as exc:
            print(f"  {part.__name__}: not measured ({exc!r})")


def cycle(fleet: Any) -> None:
    m, a = fleet.marks, fleet.args
    if not m.herd_start:
        print("  hourly cycle of deltas: not reached")
        return
    seconds = m.herd_end - m.herd_start
    line = (
        f"  hourly cycle of deltas (every healthy site due at once, agents posting): "
        f"{m.herd_done}/{m.herd_of} sites in {seconds:.0f} s wall"
    )
    if m.herd_done >= m.herd_of > 1:
        first = m.herd_first - m.herd_start
        rate = (m.herd_of - 1) / max(m.herd_end - m.herd_first, 1e-9)
        scaled = first + 999 / rate
        line += (
            f" (first applied after {first:.0f} s, then {rate:.2f} sites/s); at 1,000 sites: "
            f"{first:.0f} s + 999 / {rate:.2f} = {scaled / 60:.1f} min "
            f"(target <= 10 min: {'met' if scaled <= 600 else 'MISSED'})"
        )
    print(line)
    if "herd_end" in m.cpu:
        spent = cpu_between(fleet, "herd_start", "herd_end")
        print(
            "    cores busy during it, by process: "
            + ", ".join(
                f"{name} {spent.get(name, 0.0) / max(seconds, 1e-9):.2f}"
                for name in (*VETSYNC, "emulator", "bench")
            )
        )
    runs = delta_runs(fleet, m.all_live, m.steady_end)
    fetched = [(r.started_at - r.created_at).total_seconds() for r in runs if r.started_at]
    applied = [
        (r.finished_at - r.started_at).total_seconds()
        for r in runs
        if r.finished_at and r.started_at
    ]
    hours = (m.steady_end - m.all_live) * a.compression / 3600
    print(
        f"  steady state ({hours:.2f} sim h): {len(runs)} ezyVet deltas "
        f"({len(runs) / max(hours, 1e-9) / len(fleet.ezy):.2f} a site an hour); wall s from "
        f"the pull's start to its apply's (fetch + queue) p50 {pct(fetched, 0.5):.1f}, p95 "
        f"{pct(fetched, 0.95):.1f}; the apply p50 {pct(applied, 0.5):.1f}, p95 "
        f"{pct(applied, 0.95):.1f}; {sum(r.total for r in runs):,} client entries"
    )


def delta_runs(fleet: Any, since: float, until: float) -> list[Any]:
    from records.models import SyncRun

    return list(
        SyncRun.objects.filter(
            source="ezyvet", full=False, created_at__gte=when(since), created_at__lt=when(until)
        ).exclude(clinic_id__in=[c.clinic_id for c in fleet.failing])
    )


def ages(fleet: Any) -> None:
    m, a = fleet.marks, fleet.args
    to_min = a.compression / 60
    # From one interval after the last first copy: by then every clinic has had a delta (a
    # first copy's data date from its dispatch, which waited behind the onboarding wave).
    settled = m.all_live + a.interval * 60 / a.compression
    if not fleet.ages.covers(settled, m.steady_end):
        print(
            "  oldest live clinic's data: not measured (the steady state ends before an interval "
            "has passed since the last first copy; run more --hours)"
        )
        return
    healthy, agents, failing = fleet.ages.oldest(settled, m.steady_end)
    target = a.interval * 1.25
    print(
        f"  oldest live clinic's data (steady state from an interval after the last first copy, "
        f"sim minutes): ezyVet {healthy * to_min:.0f} "
        f"(target <= {target:.0f}: {'met' if healthy * to_min <= target else 'MISSED'}), "
        f"agents {agents * to_min:.0f}; the failing sites {failing * to_min:.0f} (down "
        f"{a.fault_minutes:g} min)"
    )
    whole = fleet.ages.oldest(m.start, m.herd_end or m.steady_end)
    print(
        f"  oldest over the whole run, onboarding included: ezyVet {whole[0] * to_min:.0f}, "
        f"agents {whole[1] * to_min:.0f} sim min"
    )


def writebacks(fleet: Any) -> None:
    from prescriptions.models import WritebackItem

    failing = [c.clinic_id for c in fleet.failing]
    rows = list(
        WritebackItem.objects.filter(created_at__gte=when(fleet.marks.start)).exclude(
            clinic_id__in=failing
        )
    )
    delivered = [r for r in rows if r.status == WritebackItem.Status.DELIVERED and r.delivered_at]
    latencies = [(r.delivered_at - r.created_at).total_seconds() for r in delivered]
    p95 = pct(latencies, 0.95)
    _, prescribing = fleet.loads
    print(
        f"  writeback commit -> delivered: {len(rows)} rows ({prescribing.made} prescriptions, "
        f"{len(prescribing.errors)} refused), undelivered {len(rows) - len(delivered)}; "
        f"p50 {pct(latencies, 0.5):.2f} s, p95 {p95:.2f} s, max {max(latencies, default=0):.2f} s "
        f"(target p95 <= 2 s: {'met' if p95 <= 2 and len(rows) == len(delivered) else 'MISSED'})"
    )
    live = when(fleet.marks.all_live)
    for phase, kept in (
        ("during the onboarding", [r for r in delivered if r.created_at < live]),
        ("after it", [r for r in delivered if r.created_at >= live]),
    ):
        part = [(r.delivered_at - r.created_at).total_seconds() for r in kept]
        print(
            f"    {phase}: {len(part)} delivered, p50 {pct(part, 0.5):.2f} s, "
            f"p95 {pct(part, 0.95):.2f} s, max {max(part, default=0):.2f} s"
        )


def answers(fleet: Any) -> None:
    import requests

    agents, _ = fleet.loads
    summary = requests.get(f"{fleet.sites_url}/_emulator/state", timeout=30).json()
    statuses = summary["status_counts"]
    agent_429 = agents.statuses.get(429, 0)
    total = int(statuses.get("429", 0)) + agent_429
    print(
        f"  429 answers: {total} (ezyVet {statuses.get('429', 0)}, agent API {agent_429}; "
        f"target 0); ezyVet calls by status {dict(sorted(statuses.items()))} (the failing "
        f"sites' 503s and drops included)"
    )
    lat = agents.latencies
    print(
        f"  agent posts: {sum(agents.statuses.values()):,} by status {dict(agents.statuses)}, "
        f"answered p50 {pct(lat, 0.5):.2f} s, p95 {pct(lat, 0.95):.2f} s; "
        f"{len(agents.errors)} errors"
    )


def cpu(fleet: Any) -> None:
    m, a = fleet.marks, fleet.args
    spent = cpu_between(fleet, "all_live", "steady_end")
    wall = m.steady_end - m.all_live
    hours = wall * a.compression / 3600
    clinics = len(fleet.ezy) + len(fleet.agents)
    ours = sum(spent.get(name, 0.0) for name in VETSYNC)
    print(
        f"  CPU, steady state: {ours:.0f} CPU-s over {wall:.0f} s wall ({ours / wall:.2f} "
        f"cores) = {ours / clinics / hours:.2f} CPU-s per clinic per sim hour ({clinics} "
        f"clinics, {hours:.2f} h)"
    )
    print(
        "    by process (CPU-s per sim hour): "
        + ", ".join(
            f"{name} {spent.get(name, 0.0) / hours:.0f}" for name in (*VETSYNC, "emulator", "bench")
        )
    )
    ezy = sum(spent.get(n, 0.0) for n in EZYVET_SIDE)
    print(
        f"    ezyVet side (pull, sync, bulk and writeback workers): "
        f"{ezy / len(fleet.ezy) / hours:.2f} CPU-s a site an hour; agents (web): "
        f"{spent.get('web', 0.0) / max(len(fleet.agents), 1) / hours:.2f} a clinic an hour; "
        f"PostgreSQL {spent.get('postgres', 0.0) / clinics / hours:.2f} a clinic an hour"
    )


def first_copies(fleet: Any) -> None:
    m = fleet.marks
    onboarding = cpu_between(fleet, "start", "all_live")
    steady = cpu_between(fleet, "all_live", "steady_end")
    names = [n for n in VETSYNC if n != "web"]
    spent = sum(onboarding.get(n, 0.0) for n in names)
    rate = sum(steady.get(n, 0.0) for n in names) / max(m.steady_end - m.all_live, 1e-9)
    wall = m.all_live - m.start
    copies = spent - rate * wall
    clients = sum(fleet.ezy_counts)
    print(
        f"  first copies: {clients:,} clients in {wall:.0f} s wall; workers + PostgreSQL + Redis "
        f"{spent:.0f} CPU-s, less the steady rate ({rate:.2f} cores x {wall:.0f} s) = "
        f"{copies:.0f} CPU-s, "
        f"{copies / clients * 1000:.1f} CPU-s per 1,000 clients"
    )


def database(fleet: Any) -> None:
    from django.db import connection

    m, a = fleet.marks, fleet.args
    sizes = m.db_bytes
    grown = sizes["end"] - sizes["empty"]
    clinics = len(fleet.ezy) + len(fleet.agents)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM records_client")
        (clients,) = cursor.fetchone()
    largest = sorted(m.tables["steady_end"].items(), key=lambda t: -t[1])[:6]
    print(
        f"  database: {grown / 2**20:.0f} MiB for {clinics} clinics and {clients:,} clients = "
        f"{grown / clinics * 1000 / 2**30:.2f} GiB per 1,000 clinics of this mix, "
        f"{grown / max(clients, 1) * 1e6 / 2**30:.2f} GiB per million clients; largest: "
        + ", ".join(f"{name} {size / 2**20:.0f} MiB" for name, size in largest)
    )
    hours = (m.steady_end - m.all_live) * a.compression / 3600
    before, after = m.tables["all_live"], m.tables["steady_end"]
    growth = sorted(((after[t] - before.get(t, 0), t) for t in after), reverse=True)[:6]
    total = sizes["steady_end"] - sizes["all_live"]
    print(
        f"  steady-state growth: {total / 2**20:.1f} MiB in {hours:.2f} sim h = "
        f"{total / clinics / hours / 1024:.1f} KiB per clinic per hour; by table: "
        + ", ".join(f"{t} {b / 2**20:.1f} MiB" for b, t in growth)
    )


def memory(fleet: Any) -> None:
    rows = fleet.sampler.memory_by_name()
    print(
        "  peak RSS (MiB; main process / largest child x children): "
        + "; ".join(
            f"{name} {main:.0f}" + (f" / {child:.0f} x {count}" if count else "")
            for name, (main, child, count) in sorted(rows.items())
        )
    )


def errors(fleet: Any) -> None:
    agents, prescribing = fleet.loads
    for label, found in (
        ("loop errors", fleet.loop_errors),
        ("agent post errors", agents.errors[:5]),
        ("prescribing errors", prescribing.errors[:5]),
    ):
        if found:
            print(f"  {label}: {found}")
