"""Per-queue statistics: depth, in flight, oldest age, open dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row

QUEUE_STATS = """
select queue, depth, visible, in_flight, oldest_age_sec, newest_age_sec,
       total_messages, dead_letters
from dragonfly.queue_stats()
"""


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One PGMQ queue as ``dragonfly.queue_stats()`` reports it."""

    queue: str
    depth: int
    visible: int
    in_flight: int
    oldest_age_sec: int | None
    newest_age_sec: int | None
    total_messages: int
    dead_letters: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_stats(conn: psycopg.Connection[Any]) -> list[QueueStats]:
    """Statistics of every queue in pgmq.meta, ordered by name."""
    with conn.cursor(row_factory=class_row(QueueStats)) as cur:
        return cur.execute(QUEUE_STATS).fetchall()
