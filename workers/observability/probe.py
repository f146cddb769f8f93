"""A small database connection for readiness checks and queue gauges.

Each process keeps one autocommit connection for this, apart from the
consumer's pool, so a probe never waits behind a job and a busy pool never
makes a healthy process look unready. It is opened lazily, reconnected after
any error, guarded by a lock (the HTTP server is threaded) and bounded by a
statement timeout. Results are cached briefly so a burst of scrapes or probes
costs one query.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from workers.ops.queues import QueueStats, queue_stats

FLEET_READY = "select process, up, ready from dragonfly.fleet_ready_counts()"
FLEET_HEALTH = "select deadlocks, listener_cursor_age_sec from dragonfly.fleet_health()"
HEARTBEAT = (
    "select dragonfly.fleet_heartbeat(%(host)s, %(pid)s, %(process)s, %(started_at)s,"
    " %(ready)s, %(reason)s)"
)
GONE = "select dragonfly.fleet_process_gone(%(host)s, %(pid)s)"


@dataclass(frozen=True, slots=True)
class FleetHealth:
    """What the fleet's heartbeats and the database say about the fleet as a whole.

    ``processes``: (process type, up, ready) for every worker kind (0 when none) and every
    other type with a fresh heartbeat; ``deadlocks``: pg_stat_database's counter of this
    database; ``listener_cursor_age_sec``: how far the alert listener's catch-up cursor trails.
    """

    processes: list[tuple[str, int, int]]
    deadlocks: int | None
    listener_cursor_age_sec: int | None


class ProbeError(Exception):
    """The database could not be reached or queried; the message is one line."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class DatabaseProbe:
    """Checks that the database answers, and reads queue statistics."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: int = 3,
        statement_timeout_ms: int = 5000,
        cache_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._ping_cache: tuple[float, str | None] | None = None
        self._stats_cache: tuple[float, list[QueueStats]] | None = None
        self._fleet_cache: tuple[float, FleetHealth] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
                # The process's own label (dragonfly-worker:enrich, ...): `dragonfly db
                # stop` names who holds the server, and this connection is that process's.
                application_name=os.environ.get("PGAPPNAME") or "dragonfly-probe",
            )
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def ping(self) -> str | None:
        """None when the database answers ``select 1``, else why not (one line)."""
        with self._lock:
            now = self._clock()
            if self._ping_cache and now - self._ping_cache[0] < self._cache_seconds:
                return self._ping_cache[1]
            error: str | None = None
            try:
                self._connection().execute("select 1")
            except psycopg.Error as exc:
                error = _one_line(exc)
                self._drop()
            self._ping_cache = (now, error)
            return error

    def queue_stats(self) -> list[QueueStats]:
        """``dragonfly.queue_stats()``; raises ProbeError when it cannot be read."""
        with self._lock:
            now = self._clock()
            if self._stats_cache and now - self._stats_cache[0] < self._cache_seconds:
                return self._stats_cache[1]
            try:
                stats = queue_stats(self._connection())
            except psycopg.Error as exc:
                self._drop()
                raise ProbeError(_one_line(exc)) from exc
            self._stats_cache = (now, stats)
            return stats

    def fleet_health(self) -> FleetHealth:
        """Heartbeat counts and database health; raises ProbeError when unreadable."""
        with self._lock:
            now = self._clock()
            if self._fleet_cache and now - self._fleet_cache[0] < self._cache_seconds:
                return self._fleet_cache[1]
            try:
                conn = self._connection()
                processes = [(str(r[0]), int(r[1]), int(r[2])) for r in conn.execute(FLEET_READY)]
                row = conn.execute(FLEET_HEALTH).fetchone()
            except psycopg.Error as exc:
                self._drop()
                raise ProbeError(_one_line(exc)) from exc
            health = FleetHealth(
                processes,
                None if row is None or row[0] is None else int(row[0]),
                None if row is None or row[1] is None else int(row[1]),
            )
            self._fleet_cache = (now, health)
            return health

    def heartbeat(
        self,
        *,
        host: str,
        pid: int,
        process: str,
        started_at: datetime,
        ready: bool,
        reason: str | None,
    ) -> None:
        """Write this process's heartbeat row; raises ProbeError when it cannot."""
        params = {
            "host": host,
            "pid": pid,
            "process": process,
            "started_at": started_at,
            "ready": ready,
            "reason": reason or None,
        }
        with self._lock:
            try:
                self._connection().execute(HEARTBEAT, params)
            except psycopg.Error as exc:
                self._drop()
                raise ProbeError(_one_line(exc)) from exc

    def gone(self, *, host: str, pid: int) -> None:
        """Remove this process's heartbeat row (a clean stop); raises ProbeError."""
        with self._lock:
            try:
                self._connection().execute(GONE, {"host": host, "pid": pid})
            except psycopg.Error as exc:
                self._drop()
                raise ProbeError(_one_line(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._drop()
