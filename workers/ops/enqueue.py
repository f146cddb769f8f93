"""Enqueue a job by hand, through the same ``queue_job()`` RPC producers use."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

HAS_QUEUE_JOB = "select to_regprocedure('public.queue_job(jsonb)') is not null"
QUEUE_JOB = "select public.queue_job(%(envelope)s)"


class QueueJobMissing(Exception):
    """The database has no public.queue_job(jsonb) (migrations not applied)."""


def build_envelope(
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    delay_seconds: int | None = None,
    requested_by: str | None = None,
) -> dict[str, Any]:
    """The argument queue_job() takes: kind, idempotency_key, payload, options."""
    envelope: dict[str, Any] = {"kind": kind, "idempotency_key": key, "payload": payload}
    if delay_seconds:
        envelope["delay_seconds"] = delay_seconds
    if requested_by:
        envelope["requested_by"] = requested_by
    return envelope


def enqueue(conn: psycopg.Connection[Any], envelope: dict[str, Any]) -> int:
    """Call queue_job(); return the message id (the existing one for a known key)."""
    row = conn.execute(HAS_QUEUE_JOB).fetchone()
    if not row or not row[0]:
        raise QueueJobMissing("public.queue_job(jsonb) does not exist in this database")
    result = conn.execute(QUEUE_JOB, {"envelope": Jsonb(envelope)}).fetchone()
    assert result is not None
    return int(result[0])
