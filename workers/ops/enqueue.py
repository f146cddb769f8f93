"""Enqueue jobs by hand, through the same ``queue_job()``/``queue_jobs()`` RPCs producers use."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    tenant: str | None = None,
) -> dict[str, Any]:
    """The argument queue_job() takes: kind, idempotency_key, payload, options."""
    envelope: dict[str, Any] = {"kind": kind, "idempotency_key": key, "payload": payload}
    if delay_seconds:
        envelope["delay_seconds"] = delay_seconds
    if requested_by:
        envelope["requested_by"] = requested_by
    if tenant:
        envelope["tenant"] = tenant
    return envelope


def enqueue(conn: psycopg.Connection[Any], envelope: dict[str, Any]) -> int:
    """Call queue_job(); return the message id (the existing one for a known key)."""
    row = conn.execute(HAS_QUEUE_JOB).fetchone()
    if not row or not row[0]:
        raise QueueJobMissing("public.queue_job(jsonb) does not exist in this database")
    result = conn.execute(QUEUE_JOB, {"envelope": Jsonb(envelope)}).fetchone()
    assert result is not None
    return int(result[0])


QUEUE_JOBS = (
    "select ordinality, msg_id, sent, sqlstate, message from public.queue_jobs(%(envelopes)s)"
    " order by ordinality"
)
MAX_JOBS_PER_CALL = 1000
"""queue_jobs() takes at most this many envelopes per call (54000 above it)."""


@dataclass(frozen=True)
class Outcome:
    """One envelope's answer from queue_jobs(): its message id (``sent`` when this call sent
    it, not an earlier one), or why it was refused."""

    msg_id: int | None
    sent: bool = False
    sqlstate: str | None = None
    message: str | None = None

    @property
    def refused(self) -> bool:
        return self.msg_id is None


def enqueue_many(
    conn: psycopg.Connection[Any], envelopes: Sequence[dict[str, Any]]
) -> list[Outcome]:
    """queue_jobs() on ``envelopes``, MAX_JOBS_PER_CALL at a time, in the caller's
    transaction; one Outcome per envelope, in order. A refused envelope does not stop the
    others (an error of the call itself, e.g. a lost connection, is raised)."""
    out: list[Outcome] = []
    for start in range(0, len(envelopes), MAX_JOBS_PER_CALL):
        chunk = list(envelopes[start : start + MAX_JOBS_PER_CALL])
        rows = conn.execute(QUEUE_JOBS, {"envelopes": Jsonb(chunk)}).fetchall()
        if len(rows) != len(chunk):
            raise RuntimeError(f"queue_jobs() answered {len(rows)} rows for {len(chunk)} jobs")
        out += [Outcome(r[1], bool(r[2]), r[3], r[4]) for r in rows]
    return out


class JobRefused(Exception):
    """queue_jobs() refused an envelope (``index`` into the list given)."""

    def __init__(self, index: int, outcome: Outcome) -> None:
        super().__init__(f"job {index + 1}: {outcome.sqlstate} {outcome.message}")
        self.index = index
        self.outcome = outcome


def enqueue_all(
    conn: psycopg.Connection[Any], envelopes: Sequence[dict[str, Any]]
) -> list[Outcome]:
    """:func:`enqueue_many` for producers whose every job must go: JobRefused on the first
    refusal (the caller's transaction is then to be rolled back, as queue_job()'s error
    would have done)."""
    outcomes = enqueue_many(conn, envelopes)
    for index, outcome in enumerate(outcomes):
        if outcome.refused:
            raise JobRefused(index, outcome)
    return outcomes


class BadLine(ValueError):
    """A line of a jobs file that is not an envelope; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


ENVELOPE_FIELDS = frozenset(
    {"kind", "idempotency_key", "payload", "delay_seconds", "requested_by", "tenant"}
)


def parse_jobs_file(
    lines: Iterable[str], kind: str, *, requested_by: str | None = None
) -> tuple[list[int], list[dict[str, Any]], list[BadLine]]:
    """The envelopes of a JSON Lines file of jobs of ``kind``: one object per line with
    ``idempotency_key`` and ``payload`` (and optionally ``delay_seconds``, ``requested_by``,
    ``tenant``, and ``kind``, which must then be ``kind``); blank lines are skipped. Returns
    the line numbers, the envelopes (``requested_by`` filled in where a line has none) and every bad
    line; the file is only worth sending when there are none."""
    numbers: list[int] = []
    envelopes: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            job = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append(BadLine(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(job, dict):
            bad.append(BadLine(number, f"must be a JSON object, got {type(job).__name__}"))
            continue
        unknown = sorted(set(job) - ENVELOPE_FIELDS)
        if unknown:
            bad.append(BadLine(number, f"unknown field(s) {', '.join(unknown)[:200]}"))
            continue
        if job.setdefault("kind", kind) != kind:
            bad.append(BadLine(number, f"kind {str(job['kind'])[:100]!r} is not {kind}"))
            continue
        key = job.get("idempotency_key")
        if not isinstance(key, str) or not key.strip():
            bad.append(BadLine(number, "idempotency_key must be a non-empty string"))
            continue
        if requested_by and job.get("requested_by") is None:
            job["requested_by"] = requested_by
        numbers.append(number)
        envelopes.append(job)
    return numbers, envelopes, bad
