"""The enrich handler: store a bundle, score the case, persist, re-plan on a tier change.

Runs inside the job's transaction (the runtime commits it together with the
message's deletion). Two database round trips in the common case, three when the
tier of an open enforcement case changed:

1. ``enrichment.prepare_scoring`` — lock the case, store the bundle
   (``upsert_enrichment_bundle`` + signals), return the model's inputs;
2. ``enrichment.record_case_scores`` — tier through ``enforcement_tier_lookup``,
   what ``set_case_scores`` + ``set_case_enrichment`` write (one UPDATE), the enforcement
   case's tier;
3. ``queue_job`` — an ``enforce`` plan job for the enforcement case, keyed
   ``plan:<enforcement case>:<tier>:<this job's key>`` so a redelivered enrich job
   enqueues nothing new.

Without a bundle in the payload the vendor adapter (if configured) is asked first, in
the job's outside phase (:func:`fetch`, run by the runtime before the job's transaction,
with no transaction open): the context it needs is read without a lock, so no row is
locked and no snapshot held during the call; the bundle reaches :func:`handle` as
``ctx.fetched``.

Most jobs of a busy queue do not come here one at a time: :mod:`workers.enrich.batch`
runs a batch's jobs together through the batch forms of the same two functions, and
only what it leaves (vendor pulls, a case's later jobs, refused bundles) runs here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, ValidationError

from workers.enrich.bundle import EnrichmentBundle
from workers.enrich.payload import EnrichPayload
from workers.enrich.scoring import ScoreBreakdown, ScoringInputs, score, summarize
from workers.enrich.vendor import EnrichmentVendor, VendorRequest
from workers.runtime import FetchContext, JobContext, PermanentError

KIND = "enrich"
ACTOR = "dragonfly:enrich"
MAX_KEY = 255


class CaseContext(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    case_id: UUID
    case_number: str
    judgment_id: UUID
    debtor_name: str
    state: str | None = None
    county: str | None = None
    previous_tier: str | None = None


class Recorded(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    previous_tier: str | None
    tier: str
    tier_changed: bool
    enforcement_case_id: UUID | None = None
    enforcement_previous_tier: str | None = None
    enforcement_tier_changed: bool = False


@dataclass(frozen=True)
class EnrichResult:
    breakdown: ScoreBreakdown
    recorded: Recorded
    bundle_source: str | None
    stored: dict[str, Any] | None
    plan_msg_id: int | None


_PREPARE = "select enrichment.prepare_scoring(%s, %s, %s)"
_RECORD = "select enrichment.record_case_scores(%s, %s, %s, %s, %s, %s, %s, %s)"
_QUEUE_JOB = "select public.queue_job(%s)"


def plan_key(enforcement_case_id: UUID, tier: str, idempotency_key: str) -> str:
    """The enforce job's idempotency key, derived from this job's key (stable on redelivery)."""
    key = f"plan:{enforcement_case_id}:{tier}:{idempotency_key}"
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"plan:{enforcement_case_id}:{tier}:sha256:{digest}"


def plan_job(
    recorded: Recorded, breakdown: ScoreBreakdown, idempotency_key: str
) -> dict[str, Any] | None:
    """The ``enforce`` plan job for the enforcement case whose tier this job changed, if any."""
    if not recorded.enforcement_tier_changed or recorded.enforcement_case_id is None:
        return None
    previous = recorded.enforcement_previous_tier or "unscored"
    return {
        "kind": "enforce",
        "idempotency_key": plan_key(recorded.enforcement_case_id, recorded.tier, idempotency_key),
        "payload": {
            "case_id": str(recorded.enforcement_case_id),
            "trigger": "tier_change",
            "note": f"enrichment moved the case from {previous} to {recorded.tier}"
            f" (collectability {breakdown.collectability})",
        },
        "requested_by": ACTOR,
    }


def enriched_fields(
    case_id: UUID,
    breakdown: ScoreBreakdown,
    recorded: Recorded,
    bundle_source: str | None,
    plan_msg_id: int | None,
) -> dict[str, Any]:
    """The ``case_enriched`` log line's own fields, the same on the single and batch paths."""
    return {
        "case_id": str(case_id),
        "collectability": str(breakdown.collectability),
        "tier": recorded.tier,
        "previous_tier": recorded.previous_tier,
        "bundle_source": bundle_source,
        "plan_msg_id": plan_msg_id,
    }


def scoring_inputs(prepared: dict[str, Any]) -> ScoringInputs:
    """The model's inputs from prepare_scoring's answer; PermanentError if the model refuses."""
    try:
        return ScoringInputs.model_validate(prepared["inputs"])
    except ValidationError as exc:  # the database handed back something the model refuses
        raise PermanentError(f"scoring inputs invalid: {exc.errors()[0]['msg']}") from None


def _call(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> Any:
    """One function call, its single value. Database refusals (22023 bad input, P0002 no such
    case...) propagate as psycopg errors: the runtime's ``classify`` makes them permanent."""
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def enqueue_plans(conn: psycopg.Connection[Any], jobs: list[dict[str, Any]]) -> list[int]:
    """queue_job the plan jobs, all in one pipelined round trip; returns the message ids."""
    with conn.pipeline():
        cursors = [conn.execute(_QUEUE_JOB, (Jsonb(job),)) for job in jobs]
    ids = []
    for cur in cursors:
        row = cur.fetchone()
        assert row is not None
        ids.append(int(row[0]))
    return ids


def pull_bundle(
    conn: psycopg.Connection[Any],
    payload: EnrichPayload,
    *,
    idempotency_key: str,
    vendor: EnrichmentVendor,
) -> EnrichmentBundle:
    """Ask the vendor for the case's bundle. The case is read without a lock, on a
    connection the caller keeps out of any transaction (the outside phase)."""
    context = CaseContext.model_validate(
        _call(conn, _PREPARE, (payload.case_id, None, False))["case"]
    )
    return vendor.fetch_bundle(
        VendorRequest(
            case_id=context.case_id,
            case_number=context.case_number,
            debtor_name=context.debtor_name,
            state=context.state,
            county=context.county,
        ),
        idempotency_key=idempotency_key,
    )


def run(
    conn: psycopg.Connection[Any],
    payload: EnrichPayload,
    *,
    idempotency_key: str,
    bundle: EnrichmentBundle | None = None,
) -> EnrichResult:
    """Enrich one case inside the caller's transaction, with the payload's bundle or
    ``bundle`` (what the vendor sent in the outside phase)."""
    bundle = payload.bundle or bundle
    prepared = _call(
        conn,
        _PREPARE,
        (payload.case_id, Jsonb(bundle.to_rpc()) if bundle is not None else None, True),
    )
    inputs = scoring_inputs(prepared)
    breakdown = score(inputs)
    recorded = Recorded.model_validate(
        _call(
            conn,
            _RECORD,
            (
                payload.case_id,
                breakdown.identity,
                breakdown.contactability,
                breakdown.asset,
                breakdown.recency_amount,
                breakdown.adverse_penalty,
                breakdown.collectability,
                summarize(inputs, breakdown),
            ),
        )
    )

    job = plan_job(recorded, breakdown, idempotency_key)
    plan_msg_id = enqueue_plans(conn, [job])[0] if job is not None else None
    return EnrichResult(
        breakdown=breakdown,
        recorded=recorded,
        bundle_source=bundle.source if bundle is not None else None,
        stored=prepared.get("stored"),
        plan_msg_id=plan_msg_id,
    )


def fetch(ctx: FetchContext, payload: EnrichPayload) -> EnrichmentBundle | None:
    """The outside phase of ``enrich`` jobs: the vendor pull, when the payload has no
    bundle and a vendor is configured (else nothing: None)."""
    vendor: EnrichmentVendor | None = ctx.adapters.get("enrich_vendor")
    if payload.bundle is not None or vendor is None:
        return None
    return pull_bundle(
        ctx.conn, payload, idempotency_key=ctx.envelope.idempotency_key, vendor=vendor
    )


def handle(ctx: JobContext, payload: EnrichPayload) -> None:
    """The runtime's entry point for ``enrich`` jobs."""
    result = run(
        ctx.conn, payload, idempotency_key=ctx.envelope.idempotency_key, bundle=ctx.fetched
    )
    ctx.log.info(
        "case_enriched",
        **enriched_fields(
            payload.case_id,
            result.breakdown,
            result.recorded,
            result.bundle_source,
            result.plan_msg_id,
        ),
    )
