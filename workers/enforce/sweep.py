"""The SLA sweep: enqueue a plan job for every open case whose next_action_at has passed.

:class:`SlaSweepTask` is a scheduler task (``workers.scheduler.tasks`` lists it; the
scheduler calls ``run_once`` every ``DRAGONFLY_ENFORCE_SLA_SWEEP_MINUTES``);
:func:`sweep` is the work, in the caller's transaction. Each overdue case gets
``{"kind": "enforce", "idempotency_key": "enforce:sla:<case>:<due>", "tenant": <the case's
tenant>, ...}``, all sent in one ``queue_jobs()`` call (the job names its case's tenant, which
the door checks and the worker acts in):
the key is derived from the due time, so running the sweep again before the plan
job has run enqueues nothing new, and once the plan has set a new
``next_action_at`` the next breach gets a new key. Everything happens in the
caller's transaction (one transaction per sweep).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from workers.ops.enqueue import enqueue_all
from workers.scheduler.base import Every, Schedule, TaskContext, TaskResult

DUE = "select case_id, next_action_at, tenant_id from dragonfly.enforcement_sla_due(%s, %s)"
REQUESTED_BY = "dragonfly:enforce-sla-sweep"


@dataclass(frozen=True)
class SweepResult:
    due: int
    """Overdue open cases found (at most the batch size)."""
    enqueued: int
    """New plan jobs sent; ``due - enqueued`` were already enqueued for that due time."""
    msg_ids: tuple[int, ...]


def sla_key(case_id: UUID, next_action_at: datetime) -> str:
    """The plan job's idempotency key for one breach of one case."""
    due = next_action_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"enforce:sla:{case_id}:{due}"


def sweep(
    conn: psycopg.Connection[Any], *, now: datetime | None = None, batch: int = 500
) -> SweepResult:
    """Enqueue plan jobs for up to ``batch`` overdue cases (one queue_jobs() call per 1000);
    the caller commits. A refused job raises JobRefused: the caller's transaction is to be
    rolled back, nothing of the sweep is kept."""
    rows = conn.execute(DUE, (now or datetime.now(UTC), batch)).fetchall()
    outcomes = enqueue_all(
        conn,
        [
            {
                "kind": "enforce",
                "idempotency_key": sla_key(case_id, due),
                "payload": {"case_id": str(case_id), "trigger": "sla_sweep"},
                "requested_by": REQUESTED_BY,
                "tenant": str(tenant_id),
            }
            for case_id, due, tenant_id in rows
        ],
    )
    return SweepResult(
        due=len(rows),
        enqueued=sum(1 for o in outcomes if o.sent),
        msg_ids=tuple(int(o.msg_id or 0) for o in outcomes),
    )


@dataclass(frozen=True, slots=True)
class SlaSweepTask:
    """The scheduler task around :func:`sweep`: one transaction per run."""

    every: Every
    batch: int = 500
    name: str = "enforce_sla_sweep"

    @classmethod
    def every_minutes(cls, minutes: int, batch: int) -> SlaSweepTask:
        return cls(Every(timedelta(minutes=minutes)), batch=batch)

    @property
    def schedule(self) -> Schedule:
        return self.every

    def run_once(self, ctx: TaskContext) -> TaskResult:
        with ctx.conn.transaction():
            result = sweep(ctx.conn, now=ctx.now, batch=self.batch)
        return TaskResult(
            "ok",
            {
                "due": result.due,
                "enqueued": result.enqueued,
                "batch_full": result.due >= self.batch,
            },
        )
