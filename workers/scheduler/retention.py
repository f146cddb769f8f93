"""Retention: prune completed-job records, queue_job()'s dedupe records of settled
jobs, PGMQ archives, resolved dead letters and settled alert deliveries, and the
rate-limit windows that are over.

Each target is pruned by its SQL function (sql/migrations/..._retention.sql,
..._prune_enqueued_jobs.sql) one batch per transaction, until a batch comes back
short; a target whose period is 0 days is kept forever. The run stops early
between batches when the scheduler is asked to stop, and after ``max_batches``
per target, so one run never monopolises the database: the next run carries on.
The rate-limit windows (a small unlogged table) go in one statement every run,
whatever the periods: they are counters, not records anyone keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workers.scheduler.base import Every, Schedule, TaskContext, TaskResult

PRUNE_COMPLETED = "select dragonfly.prune_completed_jobs(%(older)s, %(limit)s)"
PRUNE_DEDUPE = "select dragonfly.prune_enqueued_jobs(%(older)s, %(limit)s)"
PRUNE_ARCHIVES = "select queue, deleted from dragonfly.prune_archives(%(older)s, %(limit)s)"
PRUNE_DEAD_LETTERS = "select dragonfly.prune_dead_letters(%(older)s, %(limit)s)"
PRUNE_ALERT_DELIVERIES = "select dragonfly.prune_alert_deliveries(%(older)s, %(limit)s)"
PRUNE_RATE_WINDOWS = "select dragonfly.prune_enqueue_rate_windows()"
PRUNE_QUEUE_SAMPLES = "select dragonfly.prune_queue_samples(%(older)s, %(limit)s)"
PRUNE_FLEET_PROCESSES = "select dragonfly.prune_fleet_processes(interval '1 day')"


@dataclass(frozen=True, slots=True)
class RetentionTask:
    """Deletes what is older than its period, in batches of ``batch_size`` rows."""

    every: Every
    completed_days: int
    archive_days: int
    dead_letter_days: int
    alert_days: int = 0
    dedupe_days: int = 0
    queue_history_days: int = 0
    batch_size: int = 5000
    max_batches: int = 1000
    name: str = "retention"

    @property
    def schedule(self) -> Schedule:
        return self.every

    def run_once(self, ctx: TaskContext) -> TaskResult:
        detail: dict[str, Any] = {
            "enqueue_rate_windows": self._prune_rate_windows(ctx),
            "fleet_processes": self._prune_fleet_processes(ctx),
        }
        if not (
            self.completed_days
            or self.dedupe_days
            or self.archive_days
            or self.dead_letter_days
            or self.alert_days
            or self.queue_history_days
        ):
            return TaskResult.skipped("retention is disabled (every period is 0 days)", **detail)
        if self.completed_days:
            detail["completed_jobs"] = self._prune_single(ctx, PRUNE_COMPLETED, self.completed_days)
        if self.dedupe_days:
            detail["enqueued_jobs"] = self._prune_single(ctx, PRUNE_DEDUPE, self.dedupe_days)
        if self.archive_days:
            detail["archives"] = self._prune_archives(ctx)
        if self.dead_letter_days:
            detail["dead_letters"] = self._prune_single(
                ctx, PRUNE_DEAD_LETTERS, self.dead_letter_days
            )
        if self.alert_days:
            detail["alert_deliveries"] = self._prune_single(
                ctx, PRUNE_ALERT_DELIVERIES, self.alert_days
            )
        if self.queue_history_days:
            detail["queue_samples"] = self._prune_single(
                ctx, PRUNE_QUEUE_SAMPLES, self.queue_history_days
            )
        return TaskResult("ok", detail)

    def _prune_fleet_processes(self, ctx: TaskContext) -> int:
        # Heartbeat rows of processes that died without removing theirs, after a day.
        with ctx.conn.transaction():
            row = ctx.conn.execute(PRUNE_FLEET_PROCESSES).fetchone()
        return int(row[0]) if row else 0

    def _prune_rate_windows(self, ctx: TaskContext) -> int:
        with ctx.conn.transaction():
            row = ctx.conn.execute(PRUNE_RATE_WINDOWS).fetchone()
        return int(row[0]) if row else 0

    def _params(self, days: int) -> dict[str, Any]:
        return {"older": timedelta(days=days), "limit": self.batch_size}

    def _prune_single(self, ctx: TaskContext, query: str, days: int) -> int:
        total = 0
        for _ in range(self.max_batches):
            with ctx.conn.transaction():
                row = ctx.conn.execute(query, self._params(days)).fetchone()
            deleted = int(row[0]) if row else 0
            total += deleted
            if deleted < self.batch_size or ctx.stop.is_set():
                break
        return total

    def _prune_archives(self, ctx: TaskContext) -> dict[str, int]:
        totals: dict[str, int] = {}
        for _ in range(self.max_batches):
            with ctx.conn.transaction():
                rows = ctx.conn.execute(PRUNE_ARCHIVES, self._params(self.archive_days)).fetchall()
            for queue, deleted in rows:
                totals[queue] = totals.get(queue, 0) + int(deleted)
            if all(int(d) < self.batch_size for _q, d in rows) or ctx.stop.is_set():
                break
        return totals
