"""Dead letters for on-call: find, show, replay, purge.

Replay and purge resolve a dead letter and record who did it and when. Replay
sends the stored envelope again (bypassing queue_job()'s deduplication, whose
record it repoints to the new message) with a fresh attempt count; purge marks
the row purged and leaves the deletion to retention. A dead letter whose message
was over the size limit holds only a stand-in (``truncated_from_bytes`` set) and
is never replayed. Both are SQL functions so
the Ops Console can call the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

FIND = """
select id, queue, msg_id, kind, idempotency_key, message, headers, attempts, reason,
       last_error, traceback, enqueued_at, dead_at, status, resolved_at, resolved_by,
       replay_msg_id, truncated_from_bytes
from dragonfly.find_dead_letters(
    p_queue => %(queue)s, p_kind => %(kind)s, p_error => %(error)s,
    p_since => %(since)s, p_until => %(until)s, p_status => %(status)s,
    p_ids => %(ids)s, p_limit => %(limit)s)
"""

GET = """
select id, queue, msg_id, kind, idempotency_key, message, headers, attempts, reason,
       last_error, traceback, enqueued_at, dead_at, status, resolved_at, resolved_by,
       replay_msg_id, truncated_from_bytes
from dragonfly.dead_letters
where id = %(id)s
"""

PURGE = "select id from dragonfly.purge_dead_letters(p_ids => %(ids)s, p_by => %(by)s) as id"

REPLAY = "select dragonfly.replay_dead_letter(p_id => %(id)s, p_by => %(by)s)"


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters an operation applies to; None means any."""

    queue: str | None = None
    kind: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = "dead"
    ids: tuple[int, ...] = field(default=())

    @property
    def narrows(self) -> bool:
        """Whether anything beyond the status narrows the selection."""
        return bool(
            self.ids
            or self.queue
            or self.kind
            or self.error
            or self.since is not None
            or self.until is not None
        )


def find(
    conn: psycopg.Connection[Any], where: DeadLetterFilter, *, limit: int | None = 100
) -> list[dict[str, Any]]:
    """Dead letters matching ``where``, oldest first (``limit`` None: all)."""
    params = {
        "queue": where.queue,
        "kind": where.kind,
        "error": where.error,
        "since": where.since,
        "until": where.until,
        "status": where.status,
        "ids": list(where.ids) or None,
        "limit": limit,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(FIND, params).fetchall()


def get(conn: psycopg.Connection[Any], dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter by id, whatever its status."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(GET, {"id": dead_letter_id}).fetchone()


def purge(conn: psycopg.Connection[Any], ids: list[int], by: str) -> list[int]:
    """Mark the open dead letters among ``ids`` purged; return the ids purged."""
    rows = conn.execute(PURGE, {"ids": ids, "by": by}).fetchall()
    return sorted(int(r[0]) for r in rows)


def replay(conn: psycopg.Connection[Any], dead_letter_id: int, by: str) -> int:
    """Send a dead letter's message again; return the new message id.

    Raises psycopg errors with SQLSTATE P0002 (no such dead letter), 55000
    (already replayed or purged, or truncated: only a stand-in of its message was
    kept) or 22023 (malformed envelope, blank ``by``).
    """
    row = conn.execute(REPLAY, {"id": dead_letter_id, "by": by}).fetchone()
    assert row is not None
    return int(row[0])
