"""The queue history: one sample per queue per minute, for the console's charts.

``dragonfly.record_queue_samples()`` writes this minute's row of every queue (the
``queue_stats()`` figures, and the jobs done and dead-lettered since the previous sample);
a second call in the same minute writes nothing, so a standby scheduler or a run by hand
does no harm. Retention prunes the rows after ``DRAGONFLY_RETENTION_QUEUE_HISTORY_DAYS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.scheduler.base import Every, Schedule, TaskContext, TaskResult

RECORD = "select dragonfly.record_queue_samples()"


@dataclass(frozen=True, slots=True)
class QueueHistoryTask:
    """Records the minute's queue samples, one transaction per run."""

    every: Every
    name: str = "queue_history"

    @property
    def schedule(self) -> Schedule:
        return self.every

    def run_once(self, ctx: TaskContext) -> TaskResult:
        with ctx.conn.transaction():
            row = ctx.conn.execute(RECORD).fetchone()
        return TaskResult("ok", {"samples": int(row[0]) if row else 0})
