"""Per-queue statistics: depth, visible, in flight, deferred, ages, open dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

QUEUE_STATS = """
select queue, depth, visible, in_flight, deferred, next_due_at, oldest_age_sec,
       newest_age_sec, total_messages, dead_letters, depth_estimated
from dragonfly.queue_stats()
"""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One job kind's queue as ``dragonfly.queue_stats()`` reports it.

    ``in_flight``: read and not finished (a worker holds it, or it waits out a retry
    backoff); ``deferred``: never read, held back by its enqueuer until ``next_due_at``
    (the earliest of them), such as outreach waiting for quiet hours to end.
    ``depth_estimated``: deeper than 10,000 messages, so ``depth`` (and ``visible``) are
    estimated from the span of message ids, an upper bound, rather than counted.
    """

    queue: str
    depth: int
    visible: int
    in_flight: int
    deferred: int
    next_due_at: datetime | None
    oldest_age_sec: int | None
    newest_age_sec: int | None
    total_messages: int
    dead_letters: int
    depth_estimated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``next_due_at`` as ISO 8601."""
        row = asdict(self)
        row["next_due_at"] = self.next_due_at.isoformat() if self.next_due_at else None
        return row


def queue_stats(conn: psycopg.Connection[Any]) -> list[QueueStats]:
    """Statistics of every job kind's queue (dragonfly.job_kinds), ordered by name."""
    with conn.cursor(row_factory=class_row(QueueStats)) as cur:
        return cur.execute(QUEUE_STATS).fetchall()
