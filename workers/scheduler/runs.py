"""dragonfly.scheduler_runs: the last run of each task (see base.py for slots)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from workers.scheduler.base import RunRecord, RunStatus

LAST_RUN = """
select task, last_slot, last_started_at, last_finished_at, last_status, last_detail,
       last_ok_at, run_count, ran_by
from dragonfly.scheduler_runs
where task = %(task)s
"""

RECORD_START = """
insert into dragonfly.scheduler_runs as r
    (task, last_slot, last_started_at, last_status, last_detail, ran_by, run_count)
values (%(task)s, %(slot)s, %(started_at)s, 'running', '{}'::jsonb, %(ran_by)s, 1)
on conflict (task) do update
set last_slot = excluded.last_slot,
    last_started_at = excluded.last_started_at,
    last_finished_at = null,
    last_status = 'running',
    last_detail = '{}'::jsonb,
    ran_by = excluded.ran_by,
    run_count = r.run_count + 1
"""

RECORD_END = """
update dragonfly.scheduler_runs
set last_status = %(status)s,
    last_detail = %(detail)s,
    last_finished_at = %(finished_at)s,
    last_ok_at = case when %(status)s = 'ok' then %(finished_at)s else last_ok_at end
where task = %(task)s
"""


def last_run(conn: psycopg.Connection[Any], task: str) -> RunRecord | None:
    with conn.cursor(row_factory=class_row(RunRecord)) as cur:
        return cur.execute(LAST_RUN, {"task": task}).fetchone()


def record_start(
    conn: psycopg.Connection[Any], task: str, slot: datetime, started_at: datetime, ran_by: str
) -> None:
    with conn.transaction():
        conn.execute(
            RECORD_START,
            {"task": task, "slot": slot, "started_at": started_at, "ran_by": ran_by},
        )


def record_end(
    conn: psycopg.Connection[Any],
    task: str,
    status: RunStatus,
    detail: dict[str, Any],
    finished_at: datetime,
) -> None:
    with conn.transaction():
        conn.execute(
            RECORD_END,
            {"task": task, "status": status, "detail": Jsonb(detail), "finished_at": finished_at},
        )
