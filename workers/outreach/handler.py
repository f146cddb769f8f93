"""The outreach handler: contact a plaintiff once, by the right channel, at a decent hour.

Two phases (docs/outreach.md). The decision is the same in both:

1. ``begin_outreach`` locks the plaintiff and says whether this job already left an
   attempt (redelivery: do nothing) or the outreach already reached the plaintiff
   (another job of the same outreach: record ``duplicate``), how often other jobs
   contacted the plaintiff in the last 7 days, and whether the job's campaign is an
   active one;
2. a campaign that is not active, in a job that came from neither the fleet nor an
   operator: dead-lettered as forbidden, with no effect;
3. the channel rule table (``workers.outreach.channel``) — do_not_call and
   bad_number plaintiffs are never contacted (``suppressed``);
4. the contact cap: a plaintiff who got the week's emails (or call tasks) gets no
   more by that channel (``capped``);
5. quiet hours in the plaintiff's zone: if it is quiet there now, a continuation job
   is enqueued through ``queue_job`` with a delay until the window opens, and the
   attempt is recorded as ``deferred``;
6. a call: the task in ``plaintiff_tasks`` is created with the attempt row;
7. an email: sent in the outside phase, recorded in the transaction.

:func:`fetch`, the outside phase (no transaction open, each statement commits at once):
when the decision is an email, commit its intent with the stable Message-ID
(``begin_outreach_email``, which counts the cap again under the plaintiff's lock and
refuses an intent over it), hand the message to SMTP, mark the intent sent
(``settle_outreach_email``). An intent already there from an earlier attempt of this
job means that attempt died after (perhaps) sending: nothing is sent, the outcome is
``unknown``. :func:`handle`, in the job's transaction, decides again under the
plaintiff's lock and records the attempt: the email as the outside phase left it, or
whatever else the decision is. It never sends.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from workers.outreach.channel import choose_channel
from workers.outreach.mailer import Mailer, MailRejected, MailTemporarilyFailed
from workers.outreach.message import render_email
from workers.outreach.payload import OutreachPayload
from workers.outreach.quiet_hours import QuietHours, zone_of
from workers.runtime import FetchContext, JobContext, PermanentError, TransientError
from workers.runtime.envelope import TrustLevel

KIND = "outreach"
ACTOR = "dragonfly:outreach"
MAX_KEY = 255
MAX_DELAY_SECONDS = 86_400
TRUSTED_LEVELS = frozenset({"internal", "operator"})
"""Provenance levels whose jobs may name a campaign that is not in public.outreach_campaigns."""

Outcome = Literal[
    "sent",
    "unknown",
    "task_created",
    "capped",
    "suppressed",
    "no_channel",
    "deferred",
    "duplicate",
]


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
    max_emails_per_week: int
    """Emails one plaintiff may get in any 7 days (DRAGONFLY_OUTREACH_MAX_EMAILS_PER_WEEK)."""
    max_calls_per_week: int
    """Call tasks one plaintiff may get in any 7 days (DRAGONFLY_OUTREACH_MAX_CALLS_PER_WEEK)."""


@dataclass(frozen=True)
class OutreachResult:
    outcome: Outcome | None
    """None when this job had already recorded its attempt (a redelivery)."""
    detail: str
    channel: str | None = None
    next_idempotency_key: str | None = None
    not_before: datetime | None = None


_BEGIN = "select public.begin_outreach(%s, %s, %s, %s)"
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
_BEGIN_EMAIL = "select public.begin_outreach_email(%s, %s, %s, %s, %s, %s, %s)"
_SETTLE_EMAIL = "select public.settle_outreach_email(%s, %s)"


@dataclass(frozen=True)
class Emailed:
    """What the outside phase did about this job's email (``ctx.fetched``)."""

    outcome: Literal["sent", "unknown", "duplicate", "capped"]
    detail: str
    email_to: str
    message_id: str


@dataclass(frozen=True)
class Decision:
    """What an outreach job is to do, decided from ``begin_outreach``'s answer."""

    outcome: Outcome | None
    """None when this job had already recorded its attempt (a redelivery)."""
    detail: str
    fields: dict[str, Any] = field(default_factory=dict)
    """What record_outreach_attempt is told besides outcome and detail."""
    continuation: dict[str, Any] | None = None
    """The queue_job envelope of a deferral's continuation job."""
    email: EmailMessage | None = None


def continuation_key(idempotency_key: str, not_before: datetime) -> str:
    """Key of the job a deferral enqueues: stable for a redelivery of the same job."""
    key = f"{idempotency_key}>{not_before.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"outreach:sha256:{digest}>{not_before.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _quoted(text: str, limit: int = 100) -> str:
    """Caller text for an error message: repr (control characters escaped), bounded."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def cap_detail(channel: str, count: int, cap: int) -> str:
    """The ``detail`` of a ``capped`` attempt."""
    what = "emails" if channel == "email" else "call tasks"
    return (
        f"contact cap: the plaintiff got {count} {what} from outreach in the last 7 days"
        f" (at most {cap} a week); no {channel} made"
    )


def check_campaign(state: dict[str, Any], payload: OutreachPayload, level: TrustLevel) -> None:
    """A job from neither the fleet nor an operator names only an active campaign of
    public.outreach_campaigns; anything else is dead-lettered as forbidden."""
    if payload.campaign is None or level in TRUSTED_LEVELS or state.get("campaign_active"):
        return
    raise PermanentError(
        f"forbidden: campaign {_quoted(payload.campaign)} is not an active campaign of"
        f" public.outreach_campaigns, and a job of provenance {level} may name no other"
    )


def _call(conn: psycopg.Connection[Any], query: str, params: Any) -> Any:
    """One function call, its single value. Database refusals (22023, P0002, 42501...)
    propagate as psycopg errors: the runtime's ``classify`` makes them permanent."""
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def decide(
    state: dict[str, Any],
    payload: OutreachPayload,
    *,
    idempotency_key: str,
    email_enabled: bool,
    config: OutreachConfig,
    now: datetime,
    level: TrustLevel = "public",
) -> Decision:
    """The outreach's next step from ``begin_outreach``'s answer (pure).

    Raises PermanentError (``forbidden: ...``) for a campaign ``level`` may not name."""
    outreach_key = payload.outreach_key or idempotency_key
    if state["this_attempt"] is not None:
        return Decision(None, "this job already recorded its attempt")
    check_campaign(state, payload, level)
    delivered = state["delivered"]
    if delivered is not None:
        return Decision("duplicate", f"outreach already done by job {delivered['idempotency_key']}")

    plaintiff = Plaintiff.model_validate(state["plaintiff"])
    decision = choose_channel(
        status=plaintiff.status,
        has_email=bool(plaintiff.email),
        has_phone=bool(plaintiff.phone),
        email_enabled=email_enabled,
        requested=payload.channel,
    )
    if decision.outcome in ("suppressed", "no_channel"):
        outcome: Outcome = "suppressed" if decision.outcome == "suppressed" else "no_channel"
        return Decision(outcome, decision.rule)

    contacts = state["contacts"]
    channel = "email" if decision.outcome == "email" else "call"
    count = int(contacts["emails" if channel == "email" else "calls"])
    cap = config.max_emails_per_week if channel == "email" else config.max_calls_per_week
    # A job whose email intent is committed already decided (and perhaps sent): the outside
    # phase records what became of it, whatever the count is now.
    decided = channel == "email" and state.get("this_email") is not None
    if count >= cap and not decided:
        return Decision("capped", cap_detail(channel, count, cap), {"channel": channel})

    zone, zone_valid = zone_of(plaintiff.timezone)
    opens = config.quiet_hours.opens_at(now, zone)
    if opens is not None:
        delay = min(MAX_DELAY_SECONDS, max(1, math.ceil((opens - now).total_seconds()) + 1))
        next_key = continuation_key(idempotency_key, opens)
        continuation = payload.model_copy(update={"outreach_key": outreach_key})
        where = str(zone) if zone_valid else f"{zone} (unknown zone {plaintiff.timezone!r})"
        return Decision(
            "deferred",
            f"quiet hours in {where}; {decision.outcome} deferred",
            {"not_before": opens, "next_idempotency_key": next_key},
            continuation={
                "kind": KIND,
                "idempotency_key": next_key,
                "payload": continuation.model_dump(mode="json", exclude_none=True),
                "delay_seconds": delay,
                "requested_by": ACTOR,
            },
        )

    if decision.outcome == "call":
        return Decision("task_created", decision.rule, {"channel": "call", "task_due_at": now})

    if not plaintiff.email:  # pragma: no cover - the rule table ensures it
        raise PermanentError("email chosen without an address")
    message = render_email(
        to_name=plaintiff.name,
        to_address=plaintiff.email,
        from_address=config.from_address,
        reason=payload.reason,
        campaign=payload.campaign,
        outreach_key=outreach_key,
    )
    fields = {"channel": "email", "email_to": plaintiff.email, "message_id": message["Message-ID"]}
    return Decision("sent", decision.rule, fields, email=message)


def begin(
    conn: psycopg.Connection[Any],
    payload: OutreachPayload,
    *,
    idempotency_key: str,
    email_enabled: bool,
    config: OutreachConfig,
    now: datetime,
    level: TrustLevel,
) -> Decision:
    """``begin_outreach`` (locks the plaintiff until the caller's transaction ends; in
    autocommit, for that statement only), then :func:`decide`."""
    outreach_key = payload.outreach_key or idempotency_key
    state = _call(
        conn, _BEGIN, (payload.plaintiff_id, idempotency_key, outreach_key, payload.campaign)
    )
    return decide(
        state,
        payload,
        idempotency_key=idempotency_key,
        email_enabled=email_enabled,
        config=config,
        now=now,
        level=level,
    )


def send_email(
    conn: psycopg.Connection[Any],
    payload: OutreachPayload,
    *,
    idempotency_key: str,
    mailer: Mailer | None,
    config: OutreachConfig,
    now: datetime,
    level: TrustLevel = "public",
) -> Emailed | None:
    """The outside phase: send the email this job decides on, at most once; None when the
    decision is not an email (the transaction then records it)."""
    outreach_key = payload.outreach_key or idempotency_key
    decision = begin(
        conn,
        payload,
        idempotency_key=idempotency_key,
        email_enabled=mailer is not None,
        config=config,
        now=now,
        level=level,
    )
    if decision.email is None or mailer is None:
        return None
    to, message_id = decision.fields["email_to"], decision.fields["message_id"]
    intent = _call(
        conn,
        _BEGIN_EMAIL,
        (
            idempotency_key,
            outreach_key,
            payload.plaintiff_id,
            to,
            message_id,
            config.max_emails_per_week,
            ACTOR,
        ),
    )
    if intent["state"] == "blocked":
        return None  # the status changed meanwhile: the transaction decides again
    if intent["state"] == "capped":
        # Another job's email got in first: the cap is counted again under the lock, in
        # the transaction that would have committed this intent.
        detail = cap_detail("email", int(intent["emails"]), int(intent["max_emails"]))
        return Emailed("capped", detail, to, message_id)
    if intent["state"] == "other":
        return Emailed(
            "duplicate",
            f"outreach already emailed by job {intent['idempotency_key']}",
            to,
            message_id,
        )
    if intent["state"] in ("sent", "sending"):
        # An earlier attempt's email: what it sent (or may have) is what is recorded.
        to, message_id = intent["email_to"], intent["message_id"]
        if intent["state"] == "sent":
            return Emailed("sent", decision.detail, to, message_id)
        return Emailed(
            "unknown",
            f"an earlier attempt may have sent {message_id}: it ended between the SMTP send"
            " and its record; check the mail server's log (docs/runbooks/outreach-unknown.md)",
            to,
            message_id,
        )
    try:
        mailer.send(decision.email)
    except (MailRejected, MailTemporarilyFailed) as exc:
        if not exc.maybe_sent:
            _call(conn, _SETTLE_EMAIL, (idempotency_key, False))  # nothing left: may retry
        raise
    _call(conn, _SETTLE_EMAIL, (idempotency_key, True))
    return Emailed("sent", decision.detail, to, message_id)


def record(
    conn: psycopg.Connection[Any],
    payload: OutreachPayload,
    *,
    idempotency_key: str,
    emailed: Emailed | None,
    email_enabled: bool,
    config: OutreachConfig,
    now: datetime,
    level: TrustLevel = "public",
) -> OutreachResult:
    """Decide again under the plaintiff's lock and record the attempt, inside the caller's
    transaction: the email as the outside phase left it (``emailed``), or the decision.

    The lock is held until the transaction commits, so the call cap counted here cannot
    be passed by a concurrent job for the same plaintiff."""
    outreach_key = payload.outreach_key or idempotency_key
    decision = begin(
        conn,
        payload,
        idempotency_key=idempotency_key,
        email_enabled=email_enabled,
        config=config,
        now=now,
        level=level,
    )
    if decision.outcome is None:
        return OutreachResult(None, decision.detail)
    if emailed is not None and decision.outcome != "duplicate":
        fields: dict[str, Any] = {}
        if emailed.outcome in ("sent", "unknown"):
            fields = {
                "channel": "email",
                "email_to": emailed.email_to,
                "message_id": emailed.message_id,
            }
        elif emailed.outcome == "capped":
            fields = {"channel": "email"}
        decision = Decision(emailed.outcome, emailed.detail, fields)
    elif decision.email is not None:
        # Decided differently without the lock (the plaintiff changed in between): the
        # email must go out from the outside phase, so the next attempt sends it.
        raise TransientError("the outreach became an email while it was recorded; retried")
    if decision.continuation is not None:
        _call(conn, _QUEUE_JOB, (Jsonb(decision.continuation),))
    base: dict[str, Any] = {
        "idempotency_key": idempotency_key,
        "outreach_key": outreach_key,
        "plaintiff_id": payload.plaintiff_id,
        "reason": payload.reason,
        "campaign": payload.campaign,
        "channel": None,
        "email_to": None,
        "message_id": None,
        "task_due_at": None,
        "not_before": None,
        "next_idempotency_key": None,
        "actor": ACTOR,
    }
    _call(
        conn,
        _RECORD,
        {**base, **decision.fields, "outcome": decision.outcome, "detail": decision.detail},
    )
    return OutreachResult(
        decision.outcome,
        decision.detail,
        decision.fields.get("channel"),
        decision.fields.get("next_idempotency_key"),
        decision.fields.get("not_before"),
    )


def fetch(ctx: FetchContext, payload: OutreachPayload) -> Emailed | None:
    """The runtime's outside phase for ``outreach`` jobs: the email, if it is one."""
    return send_email(
        ctx.conn,
        payload,
        idempotency_key=ctx.envelope.idempotency_key,
        mailer=ctx.adapters.get("mailer"),
        config=ctx.adapters["outreach_config"],
        now=datetime.now(UTC),
        level=ctx.envelope.provenance.level,
    )


def handle(ctx: JobContext, payload: OutreachPayload) -> None:
    """The runtime's entry point for ``outreach`` jobs: record the attempt."""
    result = record(
        ctx.conn,
        payload,
        idempotency_key=ctx.envelope.idempotency_key,
        emailed=ctx.fetched,
        email_enabled=ctx.adapters.get("mailer") is not None,
        config=ctx.adapters["outreach_config"],
        now=datetime.now(UTC),
        level=ctx.envelope.provenance.level,
    )
    log = ctx.log.warning if result.outcome in ("unknown", "capped") else ctx.log.info
    log(
        "outreach_done" if result.outcome is not None else "outreach_already_recorded",
        plaintiff_id=str(payload.plaintiff_id),
        outcome=result.outcome,
        channel=result.channel,
        detail=result.detail,
        next_idempotency_key=result.next_idempotency_key,
    )
