"""What a scheduler task is, and when it is due.

A task is a name, a schedule and ``run_once(ctx)``: it does one run's work and
returns a :class:`TaskResult` (``ok`` or ``skipped`` with a reason), or raises
(recorded as ``failed``). Tests call ``run_once`` directly.

A schedule turns "now" and the task's last recorded run into the *slot* to run
now, or None. A slot is the scheduled instant a run covers; it is stored in
``dragonfly.scheduler_runs`` so a restarted scheduler does not run the same
slot twice. A run that failed (or was interrupted: its record still says
``running`` although this process holds the fleet lock) is retried after
``retry_after``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, Protocol

import psycopg

RunStatus = Literal["running", "ok", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A task's row of dragonfly.scheduler_runs."""

    task: str
    last_slot: datetime | None
    last_started_at: datetime
    last_finished_at: datetime | None
    last_status: RunStatus
    last_detail: dict[str, Any]
    last_ok_at: datetime | None
    run_count: int
    ran_by: str | None


@dataclass(frozen=True, slots=True)
class TaskResult:
    """How a run ended when it did not raise."""

    status: Literal["ok", "skipped"]
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, reason: str, **detail: Any) -> TaskResult:
        return cls("skipped", {"reason": reason, **detail})


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a run gets: an autocommit connection, the time, and the stop flag.

    The connection is the scheduler's own; a task opens its transactions with
    ``conn.transaction()`` and should check ``stop`` between batches.
    """

    conn: psycopg.Connection[Any]
    now: datetime
    stop: threading.Event


class Schedule(Protocol):
    def due_slot(self, now: datetime, last: RunRecord | None) -> datetime | None:
        """The slot to run at ``now``, or None when nothing is due."""
        ...


def _retry_due(now: datetime, last: RunRecord, retry_after: timedelta) -> bool:
    return last.last_status in ("failed", "running") and now - last.last_started_at >= retry_after


@dataclass(frozen=True, slots=True)
class DailyAt:
    """Once a day at a UTC time of day; a missed slot (scheduler down) runs on start-up."""

    at: time
    retry_after: timedelta = timedelta(minutes=15)

    @classmethod
    def parse(cls, hh_mm: str) -> DailyAt:
        hours, minutes = hh_mm.split(":")
        return cls(time(int(hours), int(minutes), tzinfo=UTC))

    def latest_slot(self, now: datetime) -> datetime:
        today = datetime.combine(now.astimezone(UTC).date(), self.at.replace(tzinfo=UTC))
        return today if today <= now else today - timedelta(days=1)

    def due_slot(self, now: datetime, last: RunRecord | None) -> datetime | None:
        slot = self.latest_slot(now)
        if last is None or last.last_slot is None or last.last_slot < slot:
            return slot
        if last.last_slot == slot and _retry_due(now, last, self.retry_after):
            return slot
        return None


@dataclass(frozen=True, slots=True)
class Every:
    """At a fixed interval after the last run started (first run: at once)."""

    interval: timedelta
    retry_after: timedelta | None = None

    def due_slot(self, now: datetime, last: RunRecord | None) -> datetime | None:
        if last is None:
            return now
        if now - last.last_started_at >= self.interval:
            return now
        retry = self.retry_after if self.retry_after is not None else self.interval
        if _retry_due(now, last, retry):
            return now
        return None


class Task(Protocol):
    """A periodic piece of maintenance."""

    @property
    def name(self) -> str: ...

    @property
    def schedule(self) -> Schedule: ...

    def run_once(self, ctx: TaskContext) -> TaskResult: ...
