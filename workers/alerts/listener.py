"""The alert listener: LISTEN for events, route them by the rules, deliver to the sinks.

Two kinds of work, each idempotent and each in its own short transaction:

- **routing** an event: evaluate the rules and store one delivery row per (event, rule,
  sink) plus a routing marker, atomically. A notification names one event (fast path);
  catch-up finds every event without a marker (on start, after every reconnect and every
  ``sweep_interval``), so a lost notification or a listener outage loses nothing.
- **delivering**: claim the oldest due delivery with ``FOR UPDATE SKIP LOCKED``, send it,
  and mark it delivered (or failed with a backoff, or dead) in the same transaction. A row
  is locked by one listener at a time, so several listeners never send the same delivery
  concurrently. A crash after the send and before the commit leaves the row pending, and
  it is sent again: at least once, at most one repeat per crash (docs/alerts.md).

``run_once()`` does one full pass of both (tests and ``dragonfly listen --once``);
``loop()`` is the daemon: a dedicated autocommit LISTEN connection, reconnects with a
capped backoff, catch-up after each (re)connect.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

import psycopg
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from workers.alerts import rules as routing
from workers.alerts import store
from workers.alerts.metrics import AlertMetrics
from workers.alerts.models import (
    EVENTS_CHANNEL,
    RULES_CHANGED,
    WAKEUP_CHANNEL,
    AlertEvent,
    Delivery,
    Notification,
    Rule,
    SinkName,
)
from workers.alerts.retry import RetryPolicy, decide
from workers.alerts.sinks.base import DeliveryError, Sink
from workers.log import get_logger
from workers.settings import Settings

Conn = psycopg.Connection[Any]
Outcome = Literal["delivered", "failed", "dead"]

log = get_logger("workers.alerts")


class ReadinessFlag(Protocol):
    """Where the listener reports readiness (the fleet's ``/readyz``)."""

    def set_ready(self, ready: bool, reason: str = "") -> None: ...


def default_name() -> str:
    """``host:pid``, recorded as ``delivered_by`` / ``routed_by``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """Validated listener settings (see the ``# --- alerts ---`` block of settings)."""

    name: str = field(default_factory=default_name)
    catchup_batch: int = 500
    lookback_seconds: float = 3600.0
    sweep_interval: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: int = 5
    idle_wait: float = 0.5
    """Longest wait between two looks at the stop flag."""
    max_reconnect_delay: float = 30.0
    synchronous_commit: bool = False
    """False: the listener's own commits do not wait for the WAL flush (docs/alerts.md)."""

    @classmethod
    def from_settings(cls, settings: Settings, *, name: str | None = None) -> ListenerConfig:
        return cls(
            name=name or default_name(),
            catchup_batch=settings.listener_catchup_batch,
            lookback_seconds=float(settings.listener_catchup_lookback_seconds),
            sweep_interval=settings.listener_sweep_interval_seconds,
            retry=RetryPolicy(
                max_attempts=settings.alert_max_attempts,
                base_seconds=settings.alert_backoff_base_seconds,
                max_seconds=settings.alert_backoff_max_seconds,
            ),
            connect_timeout=settings.connect_timeout,
            synchronous_commit=settings.listener_synchronous_commit,
        )


@dataclass(slots=True)
class PassResult:
    """What one pass did (counts of this process only)."""

    routed: int = 0
    created: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0

    def add(self, other: PassResult) -> None:
        self.routed += other.routed
        self.created += other.created
        self.delivered += other.delivered
        self.failed += other.failed
        self.dead += other.dead


class Listener:
    """One listener process's worth of state: a work connection, the sinks, a stop flag."""

    def __init__(
        self,
        url: str,
        sinks: Mapping[SinkName, Sink],
        config: ListenerConfig | None = None,
        *,
        metrics: AlertMetrics | None = None,
        readiness: ReadinessFlag | None = None,
    ) -> None:
        self._url = url
        self._sinks: dict[SinkName, Sink] = dict(sinks)
        self.config = config or ListenerConfig()
        self.metrics = metrics or AlertMetrics(CollectorRegistry())
        self._stop = threading.Event()
        self._conn: Conn | None = None
        self._reconnect_delay = 0.5
        self._sweep_now = False
        self._rules: list[Rule] | None = None
        """Rules cache of the notification path; dropped on a rules-changed notification."""
        self._next_due_in: float | None = None
        self.ready = threading.Event()
        """Set while the LISTEN connection is up and the first catch-up is done."""
        self._readiness = readiness

    # -- lifecycle --------------------------------------------------------------------

    @property
    def sink_names(self) -> list[SinkName]:
        return sorted(self._sinks)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask ``loop()`` to return after the current delivery (thread- and signal-safe)."""
        self._stop.set()

    def close(self) -> None:
        self._drop_connection()
        for sink in self._sinks.values():
            sink.close()

    def _connect(self, *, autocommit: bool = True) -> Conn:
        return psycopg.connect(
            self._url, autocommit=autocommit, connect_timeout=self.config.connect_timeout
        )

    def _work(self) -> Conn:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            if not self.config.synchronous_commit:
                # Losing one of these commits in a server crash is repaired by catch-up
                # (routing) or repeats one alert (delivery); it never loses one.
                conn.execute("set synchronous_commit = off")
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- routing ----------------------------------------------------------------------

    def _route_events(
        self, conn: Conn, events: list[AlertEvent], *, cached_rules: bool = False
    ) -> tuple[int, int]:
        if not events:
            return 0, 0
        rules = self._rules if cached_rules else None
        if rules is None:
            rules = store.load_rules(conn)
            self._rules = rules
        planned = [p for event in events for p in routing.route(rules, event)]
        return store.record_routing(conn, events, planned, routed_by=self.config.name)

    def route(
        self, event_ids: Iterable[UUID], *, source: str = "notify", cached_rules: bool = False
    ) -> PassResult:
        """Route the named events (those committed and not yet routed).

        Two statements, no explicit transaction: read the events, then one INSERT that
        writes the markers and the deliveries atomically. ``cached_rules``: reuse the
        rules of the previous routing (the loop drops them when they change).
        """
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return PassResult()
        conn = self._work()
        events = store.event_contexts(conn, ids)
        routed, created = self._route_events(conn, events, cached_rules=cached_rules)
        self.metrics.routed.labels(source).inc(routed)
        if routed:
            log.debug("alerts_routed", source=source, events=routed, deliveries=created)
        return PassResult(routed=routed, created=created)

    def catch_up(self) -> PassResult:
        """Route every event the cursor window holds without a routing marker, in batches;
        when none is left, move the cursor and prune old markers."""
        total = PassResult()
        batch = self.config.catchup_batch
        while not self.stopping:
            conn = self._work()
            with conn.transaction():
                events = store.unrouted_events(
                    conn, lookback_seconds=self.config.lookback_seconds, limit=batch
                )
                routed, created = self._route_events(conn, events)
                if len(events) < batch:
                    store.advance_cursor(conn)
                    store.prune_routing_markers(conn, lookback_seconds=self.config.lookback_seconds)
            total.routed += routed
            total.created += created
            self.metrics.routed.labels("catchup").inc(routed)
            if len(events) < batch:
                break
        if total.routed:
            log.info("listener_caught_up", events=total.routed, deliveries=total.created)
        return total

    # -- delivering -------------------------------------------------------------------

    def _send(self, sink: Sink, delivery: Delivery, conn: Conn) -> DeliveryError | None:
        try:
            if sink.uses_connection:
                with conn.transaction():  # a savepoint: a failed write keeps the claim
                    sink.deliver(delivery, conn)
            else:
                sink.deliver(delivery, conn)
        except DeliveryError as exc:
            return exc
        except psycopg.OperationalError:
            raise
        except Exception as exc:  # a sink bug is recorded on its delivery, not fatal
            log.exception("alert_sink_error", sink=sink.name, delivery_id=delivery.id)
            return DeliveryError(f"{sink.name}: {type(exc).__name__}: {exc}")
        return None

    def deliver_one(self) -> Outcome | None:
        """Claim, send and record the oldest due delivery; None when nothing is due."""
        conn = self._work()
        with conn.transaction():
            delivery = store.claim_due(conn, self._sinks)
            if delivery is None:
                return None
            attempt = delivery.attempts + 1
            sink = self._sinks[delivery.sink]
            started = time.perf_counter()
            error = self._send(sink, delivery, conn)
            elapsed = time.perf_counter() - started
            if error is None:
                latency = store.mark_delivered(
                    conn, delivery.id, attempt=attempt, by=self.config.name
                )
                outcome: Outcome = "delivered"
            else:
                decision = decide(self.config.retry, attempt, error)
                store.mark_failed(
                    conn,
                    delivery.id,
                    attempt=attempt,
                    error=str(error),
                    dead=decision.dead,
                    delay_seconds=decision.delay_seconds,
                )
                outcome = "dead" if decision.dead else "failed"
        # Committed: only now is the outcome a fact worth logging and counting.
        fields = {
            "delivery_id": delivery.id,
            "event_id": str(delivery.event_id),
            "case_id": str(delivery.case_id),
            "kind": delivery.event_kind,
            "sink": delivery.sink,
            "rule": delivery.rule,
            "attempt": attempt,
            "duration_ms": round(elapsed * 1000, 2),
        }
        self.metrics.send_seconds.labels(delivery.sink).observe(elapsed)
        if outcome == "delivered":
            self.metrics.delivered.labels(delivery.sink).inc()
            self.metrics.latency_seconds.labels(delivery.sink).observe(max(latency, 0.0))
            log.info("alert_delivered", latency_ms=round(latency * 1000, 2), **fields)
        elif outcome == "failed":
            self.metrics.failed.labels(delivery.sink).inc()
            log.warning(
                "alert_failed",
                error=str(error),
                retry_in_s=round(decision.delay_seconds, 3),
                **fields,
            )
        else:
            self.metrics.dead.labels(delivery.sink).inc()
            log.error("alert_dead", error=str(error), reason=decision.reason, **fields)
        return outcome

    def deliver_due(self, limit: int | None = None) -> PassResult:
        """Deliver until nothing is due (or ``limit`` deliveries, or stop).

        A cheap "anything due?" read comes first, so an idle pass opens no transaction;
        it also leaves when the next delivery is due in ``_next_due_in``.
        """
        result = PassResult()
        count = 0
        while not self.stopping and (limit is None or count < limit):
            self._next_due_in = self.seconds_until_due()
            if self._next_due_in is None or self._next_due_in > 0:
                break
            outcome = self.deliver_one()
            if outcome is None:
                break  # what is due is locked by another listener
            count += 1
            if outcome == "delivered":
                result.delivered += 1
            elif outcome == "failed":
                result.failed += 1
            else:
                result.dead += 1
        return result

    def seconds_until_due(self) -> float | None:
        conn = self._work()
        return store.seconds_until_due(conn, self._sinks)

    def run_once(self) -> PassResult:
        """One pass: catch up on unrouted events, then deliver everything due."""
        result = self.catch_up()
        result.add(self.deliver_due())
        return result

    # -- the daemon -------------------------------------------------------------------

    def loop(self) -> None:
        """Run until ``stop()``: LISTEN, catch up, deliver; reconnect on connection loss."""
        log.info("listener_started", listener=self.config.name, sinks=self.sink_names)
        try:
            while not self.stopping:
                try:
                    self._session()
                except (psycopg.Error, ValidationError) as exc:
                    self._set_ready(False, "database connection lost")
                    self.metrics.reconnects.inc()
                    self._drop_connection()
                    delay = self._reconnect_delay
                    log.warning(
                        "listener_connection_lost",
                        error=" ".join(str(exc).split()) or type(exc).__name__,
                        retry_in_s=delay,
                    )
                    if self._stop.wait(delay):
                        break
                    self._reconnect_delay = min(delay * 2, self.config.max_reconnect_delay)
        finally:
            self._set_ready(False, "stopping")
            log.info("listener_stopped", listener=self.config.name)

    def _set_ready(self, ready: bool, reason: str = "") -> None:
        if ready:
            self.ready.set()
        else:
            self.ready.clear()
        self.metrics.connected.set(1 if ready else 0)
        if self._readiness is not None:
            self._readiness.set_ready(ready, reason)

    def _session(self) -> None:
        with self._connect() as listen:
            # LISTEN before catching up: an event committed from now on is notified, one
            # committed before is found by the catch-up. None falls in between.
            listen.execute(f"listen {EVENTS_CHANNEL}")
            listen.execute(f"listen {WAKEUP_CHANNEL}")
            self._rules = None  # changes while disconnected were not heard
            first = self.run_once()
            self._reconnect_delay = 0.5
            self._set_ready(True)
            log.info(
                "listener_ready",
                listener=self.config.name,
                caught_up=first.routed,
                delivered=first.delivered,
            )
            next_sweep = time.monotonic() + self.config.sweep_interval
            due_at = self._due_at()
            while not self.stopping:
                now = time.monotonic()
                timeout = min(self.config.idle_wait, max(0.0, next_sweep - now))
                if due_at is not None:
                    timeout = min(timeout, max(0.0, due_at - now))
                ids, wake = self._wait(listen, timeout)
                if ids and self.route(ids, source="notify", cached_rules=True).created:
                    wake = True
                if self._sweep_now or time.monotonic() >= next_sweep:
                    self._sweep_now = False
                    listen.execute("select 1")  # notices a dead LISTEN connection
                    self.catch_up()
                    next_sweep = time.monotonic() + self.config.sweep_interval
                    wake = True
                if wake or (due_at is not None and time.monotonic() >= due_at):
                    self.deliver_due()
                    due_at = self._due_at()

    def _due_at(self) -> float | None:
        """When the loop should next try to deliver, from the last ``deliver_due``."""
        seconds = self._next_due_in
        if seconds is None or math.isnan(seconds):
            return None
        if seconds <= 0:  # due, but another listener holds it: look again shortly
            seconds = self.config.idle_wait
        return time.monotonic() + seconds

    def _wait(self, listen: Conn, timeout: float) -> tuple[list[UUID], bool]:
        """Notifications within ``timeout``: event ids, and whether anything else woke us."""
        notes = list(listen.notifies(timeout=timeout, stop_after=1))
        if notes:
            notes += list(listen.notifies(timeout=0))  # drain what arrived meanwhile
        ids: list[UUID] = []
        wake = False
        for note in notes:
            if note.channel != EVENTS_CHANNEL:
                # Notifications arrive in commit order: a rules change is seen before the
                # events committed after it, so dropping the cache here is exact.
                if note.payload == RULES_CHANGED:
                    self._rules = None
                wake = True
                continue
            self.metrics.notifications.inc()
            try:
                ids.append(Notification.model_validate_json(note.payload).event_id)
            except ValidationError as exc:
                # Still a wake-up: whatever the event is, catch-up will find it.
                log.warning(
                    "listener_bad_notification",
                    payload=note.payload[:200],
                    error=exc.errors()[0].get("msg", "invalid"),
                )
                self._sweep_now = True
        return ids, wake
