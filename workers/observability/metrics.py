"""Prometheus collectors of a fleet process, with prometheus-client.

Every process gets its own :class:`~prometheus_client.CollectorRegistry` (from
:func:`new_registry`) holding the process/platform/GC collectors, and then:

- :class:`PrometheusJobMetrics` — the consumer's hooks
  (:class:`workers.runtime.hooks.JobMetrics`):
  jobs done, failed and dead-lettered, and a handler-duration histogram;
- :class:`QueueStatsCollector` — queue depth, visible/in-flight counts, oldest
  message age and open dead letters, read from ``dragonfly.queue_stats()``
  when Prometheus scrapes;
- :class:`SchedulerMetrics` — the scheduler's leadership and task runs.

Metric names are stable; dashboards and alerts (docs/runbooks/) rely on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from workers.observability.probe import FleetHealth, ProbeError
from workers.ops.queues import QueueStats

# Handler durations: from a no-op (sub-millisecond) to a slow vendor call.
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


def new_registry() -> CollectorRegistry:
    """A registry of our own, with the standard process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class PrometheusJobMetrics:
    """The consumer's :class:`workers.runtime.hooks.JobMetrics` as Prometheus collectors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.done = Counter(
            "dragonfly_jobs_done",
            "Jobs whose effects committed.",
            ["queue", "kind"],
            registry=registry,
        )
        self.failed = Counter(
            "dragonfly_jobs_failed",
            "Failed job attempts (retried or not).",
            ["queue", "kind", "retrying"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "dragonfly_jobs_dead_lettered",
            "Messages moved to the dead-letter store.",
            ["queue", "kind", "reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "dragonfly_job_duration_seconds",
            "Handler wall time per attempt.",
            ["queue", "kind", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

        # (queue, kind) -> the two children job_done updates: labels() costs more than
        # inc() and observe() together, and it would run for every job.
        self._done_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def job_done(self, *, queue: str, kind: str, duration_s: float) -> None:
        children = self._done_children.get((queue, kind))
        if children is None:
            children = (
                self.done.labels(queue=queue, kind=kind),
                self.duration.labels(queue=queue, kind=kind, outcome="done"),
            )
            self._done_children[(queue, kind)] = children
        children[0].inc()
        children[1].observe(duration_s)

    def job_failed(self, *, queue: str, kind: str, duration_s: float, retrying: bool) -> None:
        self.failed.labels(queue=queue, kind=kind, retrying=str(retrying).lower()).inc()
        self.duration.labels(queue=queue, kind=kind, outcome="failed").observe(duration_s)

    def job_dead_lettered(self, *, queue: str, kind: str | None, reason: str) -> None:
        self.dead_lettered.labels(queue=queue, kind=kind or "", reason=reason).inc()


class QueueStatsCollector(Collector):
    """Queue gauges read at scrape time; ``dragonfly_queue_stats_up`` 0 when unreadable."""

    def __init__(self, source: Callable[[], Sequence[QueueStats]]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        # Nothing to describe up front: the families depend on the database.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dragonfly_queue_stats_up", "1 when the last read of queue statistics succeeded."
        )
        try:
            stats = list(self._source())
        except ProbeError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauges = {
            "depth": GaugeMetricFamily(
                "dragonfly_queue_depth",
                "Messages in the queue (counted up to 10,000, estimated beyond).",
                labels=["queue"],
            ),
            "visible": GaugeMetricFamily(
                "dragonfly_queue_visible", "Messages ready to be read now.", labels=["queue"]
            ),
            "in_flight": GaugeMetricFamily(
                "dragonfly_queue_in_flight",
                "Messages read whose visibility timeout still runs.",
                labels=["queue"],
            ),
            "deferred": GaugeMetricFamily(
                "dragonfly_queue_deferred",
                "Messages never read whose delivery is delayed (not due yet).",
                labels=["queue"],
            ),
            "oldest_age_sec": GaugeMetricFamily(
                "dragonfly_queue_oldest_message_age_seconds",
                "Age of the oldest message in the queue; 0 when empty.",
                labels=["queue"],
            ),
            "dead_letters": GaugeMetricFamily(
                "dragonfly_queue_dead_letters",
                "Open (not replayed or purged) dead letters of the queue.",
                labels=["queue"],
            ),
        }
        sent = CounterMetricFamily(
            "dragonfly_queue_messages_sent",
            "Messages ever sent to the queue (the message id sequence).",
            labels=["queue"],
        )
        for s in stats:
            gauges["depth"].add_metric([s.queue], s.depth)
            gauges["visible"].add_metric([s.queue], s.visible)
            gauges["in_flight"].add_metric([s.queue], s.in_flight)
            gauges["deferred"].add_metric([s.queue], s.deferred)
            gauges["oldest_age_sec"].add_metric([s.queue], s.oldest_age_sec or 0)
            gauges["dead_letters"].add_metric([s.queue], s.dead_letters)
            sent.add_metric([s.queue], s.total_messages)
        yield from gauges.values()
        yield sent


class FleetHealthCollector(Collector):
    """The fleet as its heartbeats and the database tell it, read at scrape time.

    ``dragonfly_fleet_processes_up`` / ``_ready`` per process type (every worker kind, 0 when
    none runs), ``dragonfly_database_deadlocks_total`` (pg_stat_database) and
    ``dragonfly_alert_listener_cursor_age_seconds``. Every process reports the same numbers;
    the rules take ``max`` over them. Nothing is reported when the database cannot be read
    (``dragonfly_queue_stats_up`` says so).
    """

    def __init__(self, source: Callable[[], FleetHealth]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            health = self._source()
        except ProbeError:
            return
        up = GaugeMetricFamily(
            "dragonfly_fleet_processes_up",
            "Fleet processes of the type whose heartbeat is fresh (30 s).",
            labels=["process"],
        )
        ready = GaugeMetricFamily(
            "dragonfly_fleet_processes_ready",
            "Fleet processes of the type that are up and ready.",
            labels=["process"],
        )
        for process, n_up, n_ready in health.processes:
            up.add_metric([process], n_up)
            ready.add_metric([process], n_ready)
        yield up
        yield ready
        if health.deadlocks is not None:
            deadlocks = CounterMetricFamily(
                "dragonfly_database_deadlocks",
                "Deadlocks PostgreSQL detected in the fleet's database (pg_stat_database).",
            )
            deadlocks.add_metric([], health.deadlocks)
            yield deadlocks
        if health.listener_cursor_age_sec is not None:
            cursor = GaugeMetricFamily(
                "dragonfly_alert_listener_cursor_age_seconds",
                "How far the alert listener's catch-up cursor trails the clock.",
            )
            cursor.add_metric([], health.listener_cursor_age_sec)
            yield cursor


class DatabaseErrorMetrics:
    """``dragonfly_database_unavailable_total``: times this process lost its database."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.unavailable = Counter(
            "dragonfly_database_unavailable",
            "Times this process stopped being ready because its database failed.",
            registry=registry,
        )

    def lost(self, _reason: str) -> None:
        self.unavailable.inc()


class SchedulerMetrics:
    """The scheduler's leadership and its tasks' runs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "dragonfly_scheduler_leader",
            "1 while this scheduler holds the fleet lock and runs tasks.",
            registry=registry,
        )
        self.runs = Counter(
            "dragonfly_scheduler_task_runs",
            "Scheduler task runs by outcome (ok, skipped, failed).",
            ["task", "status"],
            registry=registry,
        )
        self.last_ok = Gauge(
            "dragonfly_scheduler_task_last_success_timestamp_seconds",
            "Unix time of the task's last successful run by this process.",
            ["task"],
            registry=registry,
        )
        self.duration = Histogram(
            "dragonfly_scheduler_task_duration_seconds",
            "Wall time of scheduler task runs.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def task_ran(self, task: str, status: str, duration_s: float, finished_at: float) -> None:
        self.runs.labels(task=task, status=status).inc()
        self.duration.labels(task=task).observe(duration_s)
        if status == "ok":
            self.last_ok.labels(task=task).set(finished_at)
