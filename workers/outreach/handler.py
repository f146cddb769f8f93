"""The outreach handler: contact a plaintiff once, by the right channel, at a decent hour.

Runs inside the job's transaction. Steps (docs/outreach.md):

1. ``begin_outreach`` locks the plaintiff and says whether this job already left an
   attempt (redelivery: do nothing) or the outreach already reached the plaintiff
   (another job of the same outreach: record ``duplicate``);
2. the channel rule table (``workers.outreach.channel``) — do_not_call and
   bad_number plaintiffs are never contacted (``suppressed``);
3. quiet hours in the plaintiff's zone: if it is quiet there now, a continuation job
   is enqueued through ``queue_job`` with a delay until the window opens, and the
   attempt is recorded as ``deferred``;
4. a call: the task in ``plaintiff_tasks`` is created with the attempt row;
5. an email: the attempt row (``sent``) is written *first*, then the message is
   handed to SMTP as the handler's last act; if SMTP fails the row rolls back with
   the job.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from workers.outreach.channel import choose_channel
from workers.outreach.mailer import Mailer
from workers.outreach.message import render_email
from workers.outreach.payload import OutreachPayload
from workers.outreach.quiet_hours import QuietHours, zone_of
from workers.runtime import JobContext, PermanentError

KIND = "outreach"
ACTOR = "dragonfly:outreach"
MAX_KEY = 255
MAX_DELAY_SECONDS = 86_400

Outcome = Literal["sent", "task_created", "suppressed", "no_channel", "deferred", "duplicate"]


class Plaintiff(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID
    name: str
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    status: str


@dataclass(frozen=True)
class OutreachConfig:
    """What the handler needs from settings."""

    quiet_hours: QuietHours
    from_address: str


@dataclass(frozen=True)
class OutreachResult:
    outcome: Outcome | None
    """None when this job had already recorded its attempt (a redelivery)."""
    detail: str
    channel: str | None = None
    next_idempotency_key: str | None = None
    not_before: datetime | None = None


_BEGIN = "select public.begin_outreach(%s, %s, %s)"
_RECORD = """
select public.record_outreach_attempt(
    p_idempotency_key => %(idempotency_key)s,
    p_outreach_key => %(outreach_key)s,
    p_plaintiff_id => %(plaintiff_id)s,
    p_outcome => %(outcome)s,
    p_reason => %(reason)s,
    p_campaign => %(campaign)s,
    p_channel => %(channel)s,
    p_detail => %(detail)s,
    p_email_to => %(email_to)s,
    p_message_id => %(message_id)s,
    p_task_due_at => %(task_due_at)s,
    p_not_before => %(not_before)s,
    p_next_idempotency_key => %(next_idempotency_key)s,
    p_actor => %(actor)s
)
"""
_QUEUE_JOB = "select public.queue_job(%s)"


def continuation_key(idempotency_key: str, not_before: datetime) -> str:
    """Key of the job a deferral enqueues: stable for a redelivery of the same job."""
    key = f"{idempotency_key}>{not_before.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"outreach:sha256:{digest}>{not_before.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _call(conn: psycopg.Connection[Any], query: str, params: Any) -> Any:
    """One function call, its single value. Database refusals (22023, P0002, 42501...)
    propagate as psycopg errors: the runtime's ``classify`` makes them permanent."""
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def run(
    conn: psycopg.Connection[Any],
    payload: OutreachPayload,
    *,
    idempotency_key: str,
    mailer: Mailer | None,
    config: OutreachConfig,
    now: datetime,
) -> OutreachResult:
    """Carry out one outreach inside the caller's transaction."""
    outreach_key = payload.outreach_key or idempotency_key
    state = _call(conn, _BEGIN, (payload.plaintiff_id, idempotency_key, outreach_key))
    if state["this_attempt"] is not None:
        return OutreachResult(None, "this job already recorded its attempt")

    plaintiff = Plaintiff.model_validate(state["plaintiff"])
    base: dict[str, Any] = {
        "idempotency_key": idempotency_key,
        "outreach_key": outreach_key,
        "plaintiff_id": plaintiff.id,
        "reason": payload.reason,
        "campaign": payload.campaign,
        "channel": None,
        "detail": None,
        "email_to": None,
        "message_id": None,
        "task_due_at": None,
        "not_before": None,
        "next_idempotency_key": None,
        "actor": ACTOR,
    }

    def record(outcome: Outcome, detail: str, **fields: Any) -> None:
        _call(conn, _RECORD, {**base, "outcome": outcome, "detail": detail, **fields})

    delivered = state["delivered"]
    if delivered is not None:
        detail = f"outreach already done by job {delivered['idempotency_key']}"
        record("duplicate", detail)
        return OutreachResult("duplicate", detail)

    decision = choose_channel(
        status=plaintiff.status,
        has_email=bool(plaintiff.email),
        has_phone=bool(plaintiff.phone),
        email_enabled=mailer is not None,
        requested=payload.channel,
    )
    if decision.outcome in ("suppressed", "no_channel"):
        outcome: Outcome = "suppressed" if decision.outcome == "suppressed" else "no_channel"
        record(outcome, decision.rule)
        return OutreachResult(outcome, decision.rule)

    zone, zone_valid = zone_of(plaintiff.timezone)
    opens = config.quiet_hours.opens_at(now, zone)
    if opens is not None:
        delay = min(MAX_DELAY_SECONDS, max(1, math.ceil((opens - now).total_seconds()) + 1))
        next_key = continuation_key(idempotency_key, opens)
        continuation = payload.model_copy(update={"outreach_key": outreach_key})
        _call(
            conn,
            _QUEUE_JOB,
            (
                Jsonb(
                    {
                        "kind": KIND,
                        "idempotency_key": next_key,
                        "payload": continuation.model_dump(mode="json", exclude_none=True),
                        "delay_seconds": delay,
                        "requested_by": ACTOR,
                    }
                ),
            ),
        )
        where = str(zone) if zone_valid else f"{zone} (unknown zone {plaintiff.timezone!r})"
        detail = f"quiet hours in {where}; {decision.outcome} deferred"
        record("deferred", detail, not_before=opens, next_idempotency_key=next_key)
        return OutreachResult("deferred", detail, None, next_key, opens)

    if decision.outcome == "call":
        record("task_created", decision.rule, channel="call", task_due_at=now)
        return OutreachResult("task_created", decision.rule, "call")

    # Email: the attempt row first, then SMTP as the very last step (docs/outreach.md).
    if mailer is None or not plaintiff.email:  # pragma: no cover - the rule table ensures both
        raise PermanentError("email chosen without a mailer or an address")
    message = render_email(
        to_name=plaintiff.name,
        to_address=plaintiff.email,
        from_address=config.from_address,
        reason=payload.reason,
        campaign=payload.campaign,
        outreach_key=outreach_key,
    )
    record(
        "sent",
        decision.rule,
        channel="email",
        email_to=plaintiff.email,
        message_id=message["Message-ID"],
    )
    mailer.send(message)
    return OutreachResult("sent", decision.rule, "email")


def handle(ctx: JobContext, payload: OutreachPayload) -> None:
    """The runtime's entry point for ``outreach`` jobs."""
    mailer: Mailer | None = ctx.adapters.get("mailer")
    config: OutreachConfig = ctx.adapters["outreach_config"]
    result = run(
        ctx.conn,
        payload,
        idempotency_key=ctx.envelope.idempotency_key,
        mailer=mailer,
        config=config,
        now=datetime.now(UTC),
    )
    ctx.log.info(
        "outreach_done" if result.outcome is not None else "outreach_already_recorded",
        plaintiff_id=str(payload.plaintiff_id),
        outcome=result.outcome,
        channel=result.channel,
        detail=result.detail,
        next_idempotency_key=result.next_idempotency_key,
    )
