"""The nightly ``public.refresh_enforcement_metrics()``.

It stands aside, with status ``skipped`` and the reason logged as
``scheduler_task_skipped``, when pg_cron already schedules the function (an
active ``cron.job`` whose command names it) or when the function does not
exist in this database yet; it never fails for either.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.scheduler.base import DailyAt, Schedule, TaskContext, TaskResult

FUNCTION = "refresh_enforcement_metrics"
CRON_SCHEDULES = "select dragonfly.cron_schedules(%(fragment)s)"
FUNCTION_EXISTS = "select to_regprocedure('public.refresh_enforcement_metrics()') is not null"
REFRESH = "select public.refresh_enforcement_metrics()"


@dataclass(frozen=True, slots=True)
class RefreshMetricsTask:
    """Runs refresh_enforcement_metrics() once a day at ``at`` (UTC)."""

    at: DailyAt
    name: str = "refresh_enforcement_metrics"

    @property
    def schedule(self) -> Schedule:
        return self.at

    def run_once(self, ctx: TaskContext) -> TaskResult:
        conn = ctx.conn
        row = conn.execute(CRON_SCHEDULES, {"fragment": FUNCTION}).fetchone()
        if row and row[0]:
            return TaskResult.skipped("pg_cron schedules refresh_enforcement_metrics()")
        row = conn.execute(FUNCTION_EXISTS).fetchone()
        if not row or not row[0]:
            return TaskResult.skipped(f"function public.{FUNCTION}() does not exist")
        with conn.transaction():
            conn.execute(REFRESH)
        return TaskResult("ok")
