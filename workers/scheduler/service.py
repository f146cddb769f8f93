"""The scheduler: ``run_once()`` (one tick) and ``run()`` (the loop around it).

A tick takes the fleet lock if it can (standby otherwise), then runs every due
task in order: the start of a run is committed to ``dragonfly.scheduler_runs``
before the work and its end after it, so a restart sees what ran. A task that
raises is recorded ``failed`` and retried on its schedule's terms; a lost
connection ends the tick, gives up the lock (the session is gone anyway) and
the loop reconnects with capped backoff.

Log events: ``scheduler_leader_acquired``, ``scheduler_standby``,
``scheduler_task_started``, ``scheduler_task_done``, ``scheduler_task_skipped``
(with ``reason``), ``scheduler_task_failed``, ``scheduler_db_unavailable``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from workers.log import get_logger
from workers.observability.http import Readiness
from workers.observability.metrics import SchedulerMetrics
from workers.scheduler import runs
from workers.scheduler.base import RunStatus, Task, TaskContext
from workers.scheduler.lock import SCHEDULER_LOCK_KEY, FleetLock

log = get_logger("workers.scheduler")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """One run of one task."""

    task: str
    status: RunStatus
    slot: datetime
    detail: dict[str, Any]
    duration_s: float


@dataclass(frozen=True, slots=True)
class Tick:
    """What one ``run_once`` did: whether it led, and the runs it made."""

    leader: bool
    outcomes: list[TaskOutcome] = field(default_factory=list)


class NotLeader(Exception):
    """Another scheduler holds the fleet lock."""


class UnknownTask(Exception):
    """No task of that name."""


class Scheduler:
    """Runs the fleet's periodic tasks; safe to run several (one leads)."""

    def __init__(
        self,
        url: str,
        tasks: Sequence[Task],
        *,
        connect_timeout: int = 5,
        metrics: SchedulerMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        identity: str | None = None,
        lock_key: int = SCHEDULER_LOCK_KEY,
        stop: threading.Event | None = None,
    ) -> None:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        self._url = url
        self.tasks = list(tasks)
        self._connect_timeout = connect_timeout
        self._metrics = metrics
        self._clock = clock
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        self._lock_key = lock_key
        self.stop = stop or threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._lock: FleetLock | None = None
        self._was_leader: bool | None = None

    # -- connection and lock -------------------------------------------------

    def _connection(self) -> tuple[psycopg.Connection[Any], FleetLock]:
        if self._conn is None or self._conn.closed or self._lock is None:
            self._reset()
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                application_name="dragonfly-scheduler",
            )
            self._lock = FleetLock(self._conn, self._lock_key)
        return self._conn, self._lock

    def _reset(self) -> None:
        conn, lock, self._conn, self._lock = self._conn, self._lock, None, None
        if conn is not None and not conn.closed:
            # The server drops a closed session's locks only once its backend
            # has exited, a moment after the client returns; unlocking first
            # hands leadership over before close() returns.
            if lock is not None:
                with contextlib.suppress(psycopg.Error):
                    lock.release()
            conn.close()
        self._set_leader(False, quiet=True)

    def _set_leader(self, leader: bool, *, quiet: bool = False) -> None:
        if self._metrics is not None:
            self._metrics.leader.set(1 if leader else 0)
        if leader != self._was_leader and not quiet:
            event = "scheduler_leader_acquired" if leader else "scheduler_standby"
            log.info(event, scheduler=self.identity)
        self._was_leader = leader

    @property
    def is_leader(self) -> bool:
        return self._lock is not None and self._lock.held

    def close(self) -> None:
        """Release the lock (by closing the session) and the connection."""
        self._reset()

    # -- one tick ------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> Tick:
        """Lead if possible, then run every due task once; standby returns no runs."""
        conn, lock = self._connection()
        if not lock.try_acquire():
            self._set_leader(False)
            return Tick(leader=False)
        self._set_leader(True)
        now = now or self._clock()
        outcomes: list[TaskOutcome] = []
        for task in self.tasks:
            if self.stop.is_set():
                break
            slot = task.schedule.due_slot(now, runs.last_run(conn, task.name))
            if slot is not None:
                outcomes.append(self._run(conn, task, slot, now))
        return Tick(leader=True, outcomes=outcomes)

    def run_task(self, name: str, now: datetime | None = None) -> TaskOutcome:
        """Run one task now, whatever its schedule (``dragonfly scheduler --run``)."""
        task = next((t for t in self.tasks if t.name == name), None)
        if task is None:
            raise UnknownTask(f"no task {name!r}; tasks: {', '.join(t.name for t in self.tasks)}")
        conn, lock = self._connection()
        if not lock.try_acquire():
            raise NotLeader("another scheduler holds the fleet lock; try again when it is idle")
        now = now or self._clock()
        return self._run(conn, task, now, now)

    def _run(
        self, conn: psycopg.Connection[Any], task: Task, slot: datetime, now: datetime
    ) -> TaskOutcome:
        runs.record_start(conn, task.name, slot, now, self.identity)
        log.info("scheduler_task_started", task=task.name, slot=slot.isoformat())
        started = time.monotonic()
        status: RunStatus
        try:
            result = task.run_once(TaskContext(conn=conn, now=now, stop=self.stop))
        except psycopg.OperationalError:
            raise  # the connection is gone: the loop reconnects; the run is retried later
        except Exception as exc:  # any task failure is recorded, never fatal
            status = "failed"
            detail: dict[str, Any] = {"error": " ".join(str(exc).split()) or type(exc).__name__}
            log.error("scheduler_task_failed", task=task.name, exc_info=True, **detail)
        else:
            status, detail = result.status, result.detail
            if status == "skipped":
                log.info("scheduler_task_skipped", task=task.name, **detail)
            else:
                log.info("scheduler_task_done", task=task.name, **detail)
        duration = time.monotonic() - started
        finished_at = self._clock()
        runs.record_end(conn, task.name, status, detail, finished_at)
        if self._metrics is not None:
            self._metrics.task_ran(task.name, status, duration, finished_at.timestamp())
        return TaskOutcome(task.name, status, slot, detail, duration)

    # -- the loop ------------------------------------------------------------

    def run(
        self,
        tick_seconds: float,
        *,
        readiness: Readiness | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        """Tick every ``tick_seconds`` until ``stop`` is set; never dies of a lost database."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                self.run_once()
            except psycopg.Error as exc:
                log.warning(
                    "scheduler_db_unavailable",
                    error=" ".join(str(exc).split()) or type(exc).__name__,
                    retry_in_s=backoff,
                )
                self._reset()
                if readiness is not None:
                    readiness.set_ready(False, "database unavailable")
                wait, backoff = backoff, min(backoff * 2, max_backoff)
            else:
                if readiness is not None:
                    readiness.set_ready(True)
                wait, backoff = tick_seconds, 1.0
            self.stop.wait(wait)
        self.close()
