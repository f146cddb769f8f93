"""Record a tally mark in the kind's own table, or fail for good when asked to."""

from __future__ import annotations

from tests.tally_kind.payload import TallyPayload
from workers.runtime import JobContext, PermanentError

RECORD = "insert into dragonfly.tally_marks (idempotency_key, count) values (%s, %s)"


def handle(ctx: JobContext, payload: TallyPayload) -> None:
    if payload.fail:
        raise PermanentError(f"tally of {payload.count} was asked to fail")
    ctx.conn.execute(RECORD, (ctx.envelope.idempotency_key, payload.count))
