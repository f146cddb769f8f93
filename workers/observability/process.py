"""Observability of one fleet process, assembled from settings.

``start(settings, process=..., database_url=...)`` builds the registry, the job
and queue collectors, the readiness flag and the database probe, and starts the
HTTP server on ``DRAGONFLY_METRICS_HOST:DRAGONFLY_METRICS_PORT`` (0: no server).
A port that cannot be bound is a ConfigError (one line naming the port and
``DRAGONFLY_METRICS_PORT``): a process that runs on without its health checks
looks dead to whatever probes it, and its metrics silently vanish.

A worker process wires it to the consumer like this::

    obs = observability.start(settings, process=f"worker:{kind}", database_url=url)
    metrics, on_ready = obs.consumer_hooks()
    consumer = Consumer(..., metrics=metrics, on_ready=on_ready)
    try:
        ...  # run the consumer
    finally:
        obs.close()
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from workers.log import get_logger
from workers.observability.heartbeat import Heartbeat
from workers.observability.http import HealthServer, Readiness, make_app
from workers.observability.metrics import (
    DatabaseErrorMetrics,
    FleetHealthCollector,
    PrometheusJobMetrics,
    QueueStatsCollector,
    new_registry,
)
from workers.observability.probe import DatabaseProbe
from workers.settings import ConfigError, Settings

if TYPE_CHECKING:
    from workers.runtime.hooks import JobMetrics, ReadinessCallback


PORT_VARIABLE = "DRAGONFLY_METRICS_PORT"


def port_in_use(host: str, port: int, exc: OSError, *, child: str | None = None) -> ConfigError:
    """The one-line failure for a metrics port that cannot be bound."""
    who = f" for {child}" if child else ""
    reason = os.strerror(exc.errno) if exc.errno else " ".join(str(exc).split())
    return ConfigError(
        f"metrics port {port} on {host}{who} is not available ({reason});"
        f" set {PORT_VARIABLE} to a free port, or 0 for no metrics server"
    )


@dataclass
class ProcessObservability:
    """What a process holds: feed ``jobs`` and ``readiness``; call ``close`` at exit."""

    registry: CollectorRegistry
    jobs: PrometheusJobMetrics
    readiness: Readiness
    probe: DatabaseProbe
    server: HealthServer | None
    heartbeat: Heartbeat | None = None

    def consumer_hooks(self) -> tuple[JobMetrics, ReadinessCallback]:
        """``metrics`` and ``on_ready`` for :class:`workers.runtime.consumer.Consumer`."""
        return self.jobs, self.readiness.set_ready

    def close(self) -> None:
        self.readiness.set_ready(False, "stopping")
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.server is not None:
            self.server.close()
        self.probe.close()


def start(
    settings: Settings,
    *,
    process: str,
    database_url: str,
    port: int | None = None,
    heartbeats: bool = True,
) -> ProcessObservability:
    """Build the collectors, start the server (``port`` overrides the setting) and the
    heartbeat (``dragonfly.fleet_processes``; ``process`` names the row)."""
    log = get_logger("workers.observability")
    registry = new_registry()
    jobs = PrometheusJobMetrics(registry)
    probe = DatabaseProbe(database_url, connect_timeout=min(settings.connect_timeout, 5))
    registry.register(QueueStatsCollector(probe.queue_stats))
    registry.register(FleetHealthCollector(probe.fleet_health))
    database_errors = DatabaseErrorMetrics(registry)
    readiness = Readiness(on_lost=database_errors.lost)
    server: HealthServer | None = None
    bind_port = settings.metrics_port if port is None else port
    if bind_port:
        try:
            server = HealthServer(
                make_app(registry, readiness, probe.ping), settings.metrics_host, bind_port
            ).start()
        except OSError as exc:
            probe.close()
            raise port_in_use(settings.metrics_host, bind_port, exc) from None
        log.info("metrics_server_started", process=process, url=server.url)
    heartbeat = Heartbeat(probe, readiness, process).start() if heartbeats else None
    return ProcessObservability(registry, jobs, readiness, probe, server, heartbeat)
