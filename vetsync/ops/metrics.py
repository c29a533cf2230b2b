"""Prometheus metrics. Counters and histograms are updated where the work happens (web,
workers); with ``PROMETHEUS_MULTIPROC_DIR`` set (``make serve`` sets it for every process)
each process writes them to a shared directory and ``/metrics`` adds them up, so what the
Celery workers did shows too. Gauges that describe the present (writeback rows by status,
queue depths, heartbeat ages, the stalest live clinic's data) are read when ``/metrics`` is
scraped."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vetsync.ops.heartbeats import beat_age, heartbeat_ages

logger = logging.getLogger(__name__)

SYNC_RUNS = Counter(
    "vetsync_sync_runs", "Sync runs finished, by outcome and source.", ["outcome", "source"]
)
SYNC_RUN_SECONDS = Histogram(
    "vetsync_sync_run_duration_seconds",
    "Sync run duration (started to finished).",
    ["source"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
RECORDS_APPLIED = Counter(
    "vetsync_sync_records_applied", "Client entries applied by succeeded sync runs.", ["source"]
)
WRITEBACK_ATTEMPTS = Counter(
    "vetsync_writeback_attempts", "WriteBack attempts finished, by outcome.", ["outcome"]
)
WRITEBACK_LATENCY = Histogram(
    "vetsync_writeback_commit_to_delivered_seconds",
    "From a WriteBack row's commit to its delivery.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
# ezyVet calls and 429s by site are counted by the clinics layer (clinics/metrics.py).


class PresentState(Collector):
    """What is true at scrape time, read from the database, the broker and the cache."""

    def collect(self) -> Iterator[Metric]:
        from prescriptions.models import WritebackItem

        rows = GaugeMetricFamily(
            "vetsync_writeback_rows", "WriteBack outbox rows by status.", labels=["status"]
        )
        counts = dict(
            WritebackItem.objects.values_list("status").annotate(n=Count("pk")).order_by()
        )
        for status in WritebackItem.Status.values:
            rows.add_metric([status], counts.get(status, 0))
        yield rows
        depth = GaugeMetricFamily(
            "vetsync_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for queue, size in queue_depths().items():
            depth.add_metric([queue], size)
        yield depth
        ages = heartbeat_ages()
        age = GaugeMetricFamily(
            "vetsync_queue_heartbeat_age_seconds",
            "Seconds since a worker took each queue's heartbeat (-1: never).",
            labels=["queue"],
        )
        for queue, seconds in ages.items():
            age.add_metric([queue], -1 if seconds is None else seconds)
        yield age
        beat = beat_age(ages)
        yield GaugeMetricFamily(
            "vetsync_beat_heartbeat_age_seconds",
            "Seconds since beat's youngest heartbeat was taken by a worker (-1: never).",
            value=-1 if beat is None else beat,
        )
        yield from data_freshness()


def data_freshness() -> Iterator[Metric]:
    """How stale the stalest live clinic is, per connector, and how many integrations fail:
    the sign that pulls and applies fall behind (the capacity model in the README)."""
    from clinics.models import Integration

    live = Integration.objects.filter(status=Integration.Status.LIVE)
    oldest = dict(
        live.filter(failing_since__isnull=True, last_successful_sync_at__isnull=False)
        .values_list("connector")
        .annotate(at=Min("last_successful_sync_at"))
        .order_by()
    )
    age = GaugeMetricFamily(
        "vetsync_sync_oldest_data_age_seconds",
        "Seconds since the live, healthy clinic synced longest ago last succeeded, by connector.",
        labels=["connector"],
    )
    now = timezone.now()
    for connector, at in sorted(oldest.items()):
        age.add_metric([connector], (now - at).total_seconds())
    yield age
    yield GaugeMetricFamily(
        "vetsync_integrations_failing",
        "Live integrations whose syncs fail (each backs off alone; not a capacity sign).",
        value=live.filter(failing_since__isnull=False).count(),
    )


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue, asked of the broker (Redis or the filesystem broker)."""
    from vetsync.celery import app

    depths: dict[str, int] = {}
    try:
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            for queue in settings.CELERY_QUEUES_ALL:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[queue] = 0
    except Exception as exc:
        logger.warning("metrics: broker unreachable for queue depths: %s", exc)
    return depths


def render() -> bytes:
    """The Prometheus text exposition of every process's metrics and the present state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(PresentState())
        return generate_latest(registry)
    present = CollectorRegistry()
    present.register(PresentState())
    return generate_latest(REGISTRY) + generate_latest(present)
