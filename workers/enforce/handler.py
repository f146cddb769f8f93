"""The enforce handler: read the case under its lock, plan, act through the RPCs.

Runs inside the job's transaction (the runtime commits it with the message's
deletion). The order of calls:

1. ``dragonfly.enforce_plan_input(case_id, true)`` — the planner's input; locks the
   case row, so a second plan job for the same case waits and then sees this one's
   action (no duplicate);
2. :func:`workers.enforce.planner.plan` — pure;
3. ``set_enforcement_stage`` when the stage moves forward (with ``next_action_at``);
4. the step's RPC: ``queue_enforcement_action``, ``issue_subpoena`` or
   ``log_enforcement_event``;
5. ``dragonfly.schedule_next_action`` when the stage did not move.

Which rule fired and why travels in every RPC's metadata/payload, so the case's
timeline explains the automation. docs/enforcement-playbook.md is the reference.

A batch of plan jobs shares one transaction: :func:`lock_batch` first locks all of its
cases in id order in one statement (the lock order of docs/architecture.md), so the jobs'
own case locks, taken one by one in message order, never wait on another transaction
that waits on this one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.enforce.payload import EnforcePayload
from workers.enforce.planner import Plan, PlanInput, Step, plan
from workers.runtime import BatchContext, BatchItem, JobContext, PermanentError

KIND = "enforce"
ACTOR = "dragonfly:enforce"

_READ = "select dragonfly.enforce_plan_input(%s, true)"
_LOCK_CASES = "select dragonfly.lock_enforcement_cases(%s)"
_NOW = "select now()"
_SET_STAGE = "select public.set_enforcement_stage(%s)"
_QUEUE_ACTION = "select public.queue_enforcement_action(%s)"
_ISSUE_SUBPOENA = "select public.issue_subpoena(%s)"
_LOG_EVENT = "select public.log_enforcement_event(%s)"
_SCHEDULE = "select dragonfly.schedule_next_action(%s, %s, %s, %s)"


class PlanRead(BaseModel):
    """What ``enforce_plan_input`` returns: the planner's input and who to address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    closed: bool
    tier: str | None
    hints: list[str]
    open_actions: list[str]
    tried_actions: list[str]
    review_pending: bool
    debtor_name: str
    institutions: dict[str, str] = Field(default_factory=dict)

    def plan_input(self, requested: str | None) -> PlanInput:
        return PlanInput.model_validate(
            {
                "stage": self.stage,
                "closed": self.closed,
                "tier": self.tier,
                "hints": frozenset(self.hints),
                "open_actions": frozenset(self.open_actions),
                "tried_actions": frozenset(self.tried_actions),
                "review_pending": self.review_pending,
                "requested": requested,
            }
        )


@dataclass(frozen=True)
class PlanOutcome:
    case_id: UUID
    plan: Plan
    next_action_at: datetime | None
    effect_id: str | None
    """The action, event or subpoena id the step created (None for wait/none)."""


def _call(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> Any:
    """One value from one named query. Database errors propagate: the runtime's
    ``classify`` makes refusals (22xxx, 23xxx, 42xxx, P0xxx, DFxxx) permanent and
    deadlocks or lost connections transient."""
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _subpoena_recipient(read: PlanRead, inp: PlanInput) -> tuple[str, str]:
    """(recipient, recipient_type): the known bank or employer, else the debtor."""
    for kind in ("bank", "employer"):
        if kind in inp.hints:
            return read.institutions.get(kind) or f"{kind} of {read.debtor_name}", kind
    return read.debtor_name, "debtor"


def run(
    conn: psycopg.Connection[Any], payload: EnforcePayload, *, idempotency_key: str
) -> PlanOutcome:
    """Plan one case and carry the plan out, inside the caller's transaction."""
    case_id = payload.case_id
    raw = _call(conn, _READ, (case_id,))
    try:
        read = PlanRead.model_validate(raw)
        inp = read.plan_input(payload.requested_action)
    except ValidationError as exc:
        raise PermanentError(f"planner input invalid: {exc.errors()[0]['msg']}") from None
    decided = plan(inp)
    if decided.step is Step.NONE:
        return PlanOutcome(case_id, decided, None, None)

    now: datetime = _call(conn, _NOW, ())
    assert decided.follow_up_days is not None
    next_at = now + timedelta(days=decided.follow_up_days)
    meta: dict[str, Any] = {
        "rule": decided.rule,
        "reason": decided.reason,
        "trigger": payload.trigger,
        "job": idempotency_key,
        "hints": sorted(inp.hints),
        "tier": inp.tier,
    }
    if payload.note:
        meta["note"] = payload.note

    if decided.stage is not None:
        _call(
            conn,
            _SET_STAGE,
            (
                Jsonb(
                    {
                        "case_id": str(case_id),
                        "stage": decided.stage,
                        "actor": ACTOR,
                        "note": decided.reason,
                        "metadata": meta,
                        "next_action_at": next_at.isoformat(),
                    }
                ),
            ),
        )

    effect: Any = None
    if decided.step in (Step.BANK_LEVY, Step.GARNISHMENT, Step.MARSHAL):
        target = read.institutions.get(
            {"bank_levy": "bank", "garnishment": "employer"}.get(str(decided.action_type), "")
        )
        effect = _call(
            conn,
            _QUEUE_ACTION,
            (
                Jsonb(
                    {
                        "case_id": str(case_id),
                        "action_type": decided.action_type,
                        "status": "queued",
                        "metadata": {**meta, **({"target": target} if target else {})},
                        "status_reason": decided.reason,
                        "actor": ACTOR,
                    }
                ),
            ),
        )
    elif decided.step is Step.SUBPOENA:
        recipient, recipient_type = _subpoena_recipient(read, inp)
        result = _call(
            conn,
            _ISSUE_SUBPOENA,
            (
                Jsonb(
                    {
                        "case_id": str(case_id),
                        "recipient": recipient[:200],
                        "recipient_type": recipient_type,
                        # Where the document service stores the rendered subpoena.
                        "document_path": f"generated/information_subpoena/{case_id}/"
                        f"{now:%Y%m%dT%H%M%S}-{recipient_type}.pdf",
                        "metadata": {**meta, "document_template": "information_subpoena"},
                        "note": decided.reason,
                        "actor": ACTOR,
                    }
                ),
            ),
        )
        effect = result.get("action_id") if isinstance(result, dict) else result
    elif decided.step is Step.ASSET_SEARCH:
        effect = _call(
            conn,
            _LOG_EVENT,
            (
                Jsonb(
                    {
                        "case_id": str(case_id),
                        "event_kind": "asset_search_requested",
                        "payload": meta,
                        "actor": ACTOR,
                    }
                ),
            ),
        )
    elif decided.step is Step.UNCOLLECTIBLE_REVIEW:
        effect = _call(
            conn,
            _LOG_EVENT,
            (
                Jsonb(
                    {
                        "case_id": str(case_id),
                        "event_kind": "note_added",
                        "payload": {**meta, "review": "uncollectible"},
                        "actor": ACTOR,
                    }
                ),
            ),
        )

    if decided.stage is None:
        _call(conn, _SCHEDULE, (case_id, next_at, ACTOR, decided.reason))
    return PlanOutcome(case_id, decided, next_at, str(effect) if effect is not None else None)


def handle(ctx: JobContext, payload: EnforcePayload) -> None:
    """The runtime's entry point for ``enforce`` jobs."""
    outcome = run(ctx.conn, payload, idempotency_key=ctx.envelope.idempotency_key)
    ctx.log.info(
        "case_planned",
        case_id=str(outcome.case_id),
        rule=outcome.plan.rule,
        step=outcome.plan.step.value,
        stage=outcome.plan.stage,
        next_action_at=outcome.next_action_at.isoformat() if outcome.next_action_at else None,
        effect_id=outcome.effect_id,
        trigger=payload.trigger,
    )


def lock_batch(ctx: BatchContext, items: Sequence[BatchItem[EnforcePayload]]) -> Collection[int]:
    """The runtime's batch entry point: lock every case of the batch, in id order, and
    complete no job; each then runs through :func:`handle` with its case already locked."""
    ctx.conn.execute(_LOCK_CASES, ([item.payload.case_id for item in items],))
    return ()
