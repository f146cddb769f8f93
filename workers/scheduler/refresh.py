"""The nightly ``public.refresh_enforcement_metrics()`` pass.

The function does one bounded step of the pass per call (migration
``20261202150000_refresh_in_chunks``); this task calls it, one autocommit
transaction per step, until ``refresh_enforcement_metrics_progress()`` says the
pass is finished, so no step holds its row locks for longer than one chunk. A
stop request ends the run between steps; the pass resumes where it stopped on
the next run (the cursor is committed with each step).

It stands aside, with status ``skipped`` and the reason logged as
``scheduler_task_skipped``, when pg_cron already schedules the refresh (an
active ``cron.job`` whose command names it) or when the function does not
exist in this database yet; it never fails for either. After a pass that
wrote something it vacuums ``enforcement_cases`` and ``judgments`` (when it owns
them), so the console's index-only reads find the pages all-visible again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.scheduler.base import DailyAt, Schedule, TaskContext, TaskResult

FUNCTION = "refresh_enforcement_metrics"
CRON_SCHEDULES = "select dragonfly.cron_schedules(%(fragment)s)"
FUNCTION_EXISTS = "select to_regprocedure('public.refresh_enforcement_metrics()') is not null"
PROGRESS_EXISTS = (
    "select to_regprocedure('public.refresh_enforcement_metrics_progress()') is not null"
)
REFRESH = "select public.refresh_enforcement_metrics()"
# A whole pass in SQL, one commit per step (run it outside a transaction block): what the
# pg_cron job runs (migration 20261202150700) and what to run by hand.
WHOLE_PASS = (
    "do $pass$ begin loop perform public.refresh_enforcement_metrics(); commit; "
    "exit when (public.refresh_enforcement_metrics_progress() ->> 'finished')::boolean; "
    "end loop; end $pass$"
)
# The same, forced full: every open case is read, not only the marked ones (migration
# 20261204110000; docs/rpc.md). For after a load that bypassed triggers, or by hand.
FULL_PASS = (
    "do $pass$ begin perform public.refresh_enforcement_metrics(true); commit; "
    "loop exit when (public.refresh_enforcement_metrics_progress() ->> 'finished')::boolean; "
    "perform public.refresh_enforcement_metrics(); commit; end loop; end $pass$"
)
PROGRESS = "select public.refresh_enforcement_metrics_progress()"
# VACUUM needs the tables' owner (a warning and nothing done otherwise), so ask first.
OWNS_TABLES = (
    "select bool_and(pg_has_role(c.relowner, 'MEMBER')) from pg_class c "
    "where c.oid in ('public.enforcement_cases'::regclass, 'public.judgments'::regclass)"
)
VACUUM = "vacuum (analyze) public.enforcement_cases, public.judgments"
WRITES = ("cases_changed", "resurfaced", "pipeline_tiers_resynced")


@dataclass(frozen=True, slots=True)
class RefreshMetricsTask:
    """Runs a refresh_enforcement_metrics() pass once a day at ``at`` (UTC)."""

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
        row = conn.execute(PROGRESS_EXISTS).fetchone()
        stepwise = bool(row and row[0])
        steps = 0
        while True:
            with conn.transaction():
                counts = conn.execute(REFRESH).fetchone()
            steps += 1
            if not stepwise or self._finished(ctx):
                detail = self._detail(counts, steps)
                if any(detail.get(key) for key in WRITES):
                    detail["vacuumed"] = self._vacuum(ctx)
                return TaskResult("ok", detail)
            if ctx.stop.is_set():
                return TaskResult("ok", {**self._detail(counts, steps), "interrupted": True})

    @staticmethod
    def _finished(ctx: TaskContext) -> bool:
        row = ctx.conn.execute(PROGRESS).fetchone()
        return bool(row and isinstance(row[0], dict) and row[0].get("finished"))

    @staticmethod
    def _vacuum(ctx: TaskContext) -> bool:
        """Marks the pages the pass wrote all-visible again, so the console's index-only
        reads do not fetch heap rows until autovacuum comes by (migration 20261202150200)."""
        row = ctx.conn.execute(OWNS_TABLES).fetchone()
        if not row or not row[0]:
            return False
        ctx.conn.execute(VACUUM)
        return True

    @staticmethod
    def _detail(counts: Any, steps: int) -> dict[str, Any]:
        totals = counts[0] if counts and isinstance(counts[0], dict) else {}
        return {"steps": steps, **{k: v for k, v in totals.items() if k != "ran_at"}}
