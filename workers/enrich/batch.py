"""The enrich batch path: many jobs of one batch in a few round trips.

The runtime offers the runnable jobs of a batch to :func:`handle_batch` (under one
savepoint, see ``JobKind.handle_batch``). It takes the jobs it can run set-based and
makes, for all of them together, the two database calls :mod:`workers.enrich.handler`
makes per job:

1. ``enrichment.prepare_scoring_batch`` — lock every case (in id order), store each
   valid bundle (contacts, assets, signals), return each job's model inputs, or why the
   job was left alone (nothing was written for it);
2. the model, in Python, per job (:mod:`workers.enrich.scoring`, as ``handle`` does);
3. ``enrichment.record_case_scores_batch`` — tiers, scores, the enforcement cases' tiers;
4. the ``enforce`` plan jobs for enforcement cases whose tier changed, as ``handle``
   enqueues them (same keys), in one pipelined round trip.

Left to the single path (not returned, so the runtime runs them through ``handle``, in
their order, after this): jobs without a bundle when a vendor adapter is configured (the
runtime does not offer those anyway: their bundle was pulled in the outside phase and
reaches ``handle`` as ``ctx.fetched``), every job of a case after the
first (one job per case per call keeps the merge order of the queue) or of a case whose
earlier job is left, and jobs the database refused (an invalid bundle, an unknown case:
``handle`` fails them with the usual reason). The SQL side shares one implementation with
the single path (see sql/migrations/20261127005010_enrich_scoring_functions.sql), so both
give the same database state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from workers.enrich.handler import (
    KIND,
    Recorded,
    enqueue_plans,
    enriched_fields,
    plan_job,
    scoring_inputs,
)
from workers.enrich.payload import EnrichPayload
from workers.enrich.scoring import ScoreBreakdown, ScoringInputs, score, summarize
from workers.enrich.vendor import EnrichmentVendor
from workers.runtime import BatchContext, BatchItem

_PREPARE_BATCH = "select ref, error, prepared from enrichment.prepare_scoring_batch(%s)"
_RECORD_BATCH = "select case_id, recorded from enrichment.record_case_scores_batch(%s)"


def select_items(
    items: Sequence[BatchItem[EnrichPayload]], *, vendor: EnrichmentVendor | None
) -> list[BatchItem[EnrichPayload]]:
    """The jobs to run set-based: at most one per case, and none that needs the vendor.

    A case with a job left to the single path keeps all its later jobs there too, so the
    jobs of one case still run in queue order (the first ones here, the rest after)."""
    taken: list[BatchItem[EnrichPayload]] = []
    seen: set[UUID] = set()
    for item in items:
        case_id = item.payload.case_id
        if case_id not in seen and (item.payload.bundle is not None or vendor is None):
            taken.append(item)
        seen.add(case_id)
    return taken


def _score_row(case_id: UUID, inputs: ScoringInputs, breakdown: ScoreBreakdown) -> dict[str, Any]:
    # Decimals as strings: exact, and the function reads them as numeric.
    return {
        "case_id": str(case_id),
        "identity_score": str(breakdown.identity),
        "contactability_score": str(breakdown.contactability),
        "asset_score": str(breakdown.asset),
        "recency_amount_score": str(breakdown.recency_amount),
        "adverse_penalty": str(breakdown.adverse_penalty),
        "collectability_score": str(breakdown.collectability),
        "summary": summarize(inputs, breakdown),
    }


def handle_batch(ctx: BatchContext, items: Sequence[BatchItem[EnrichPayload]]) -> list[int]:
    """The runtime's batch entry point for ``enrich`` jobs; returns the msg_ids it completed."""
    vendor: EnrichmentVendor | None = ctx.adapters.get("enrich_vendor")
    taken = select_items(items, vendor=vendor)
    if not taken:
        return []
    conn = ctx.conn

    jobs = []
    for item in taken:
        job: dict[str, Any] = {"ref": item.msg_id, "case_id": str(item.payload.case_id)}
        if item.payload.bundle is not None:
            job["bundle"] = item.payload.bundle.to_rpc()
        jobs.append(job)
    prepared: dict[int, dict[str, Any]] = {}
    for ref, error, answer in conn.execute(_PREPARE_BATCH, (Jsonb(jobs),)).fetchall():
        if error is None:
            prepared[int(ref)] = answer

    # The model, per job. A refusal here raises: everything is rolled back and every
    # job runs through handle, which fails the bad one with the same PermanentError.
    ready: list[tuple[BatchItem[EnrichPayload], ScoreBreakdown]] = []
    rows = []
    for item in taken:
        answer = prepared.get(item.msg_id)
        if answer is None:
            continue
        inputs = scoring_inputs(answer)
        breakdown = score(inputs)
        ready.append((item, breakdown))
        rows.append(_score_row(item.payload.case_id, inputs, breakdown))
    if not ready:
        return []

    recorded: dict[UUID, Recorded] = {}
    for case_id, answer in conn.execute(_RECORD_BATCH, (Jsonb(rows),)).fetchall():
        recorded[UUID(str(case_id))] = Recorded.model_validate(answer)

    plans: list[tuple[int, dict[str, Any]]] = []
    for index, (item, breakdown) in enumerate(ready):
        plan = plan_job(recorded[item.payload.case_id], breakdown, item.envelope.idempotency_key)
        if plan is not None:
            plans.append((index, plan))
    plan_ids: dict[int, int] = {}
    if plans:
        ids = enqueue_plans(conn, [plan for _, plan in plans])
        plan_ids = {index: msg_id for (index, _), msg_id in zip(plans, ids, strict=True)}

    for index, (item, breakdown) in enumerate(ready):
        bundle = item.payload.bundle
        ctx.log.info(
            "case_enriched",
            queue=ctx.queue,
            msg_id=item.msg_id,
            kind=KIND,
            idempotency_key=item.envelope.idempotency_key,
            batch=True,
            **enriched_fields(
                item.payload.case_id,
                breakdown,
                recorded[item.payload.case_id],
                bundle.source if bundle is not None else None,
                plan_ids.get(index),
            ),
        )
    return [item.msg_id for item, _ in ready]
