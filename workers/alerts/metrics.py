"""Prometheus collectors of the alert listener.

``default_metrics()`` registers them once on the process's default registry (what the
fleet's ``/metrics`` serves); tests build ``AlertMetrics(CollectorRegistry())``.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class AlertMetrics:
    """Counters by sink, delivery durations, listener state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self.delivered = Counter(
            "dragonfly_alerts_delivered_total", "Alerts delivered.", ["sink"], registry=reg
        )
        self.failed = Counter(
            "dragonfly_alerts_failed_total",
            "Delivery attempts that failed and will be retried.",
            ["sink"],
            registry=reg,
        )
        self.dead = Counter(
            "dragonfly_alerts_dead_total", "Deliveries given up (dead).", ["sink"], registry=reg
        )
        self.routed = Counter(
            "dragonfly_alert_events_routed_total",
            "Events whose rules this process evaluated, by how it found them.",
            ["source"],
            registry=reg,
        )
        self.notifications = Counter(
            "dragonfly_alert_notifications_total",
            "Notifications received on enforcement_events_channel.",
            registry=reg,
        )
        self.reconnects = Counter(
            "dragonfly_alert_listener_reconnects_total",
            "Times the listener lost its database connection.",
            registry=reg,
        )
        self.connected = Gauge(
            "dragonfly_alert_listener_connected",
            "1 while the LISTEN connection is up.",
            registry=reg,
        )
        self.send_seconds = Histogram(
            "dragonfly_alert_send_seconds",
            "Duration of one delivery attempt (the sink call).",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.latency_seconds = Histogram(
            "dragonfly_alert_latency_seconds",
            "From the event's creation to its delivery.",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )


_default: AlertMetrics | None = None
_lock = threading.Lock()


def default_metrics() -> AlertMetrics:
    """The collectors on the default registry, created on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = AlertMetrics()
        return _default
