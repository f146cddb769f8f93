"""The enrich job's payload."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict

from workers.enrich.bundle import EnrichmentBundle


class EnrichPayload(BaseModel):
    """``queue_job({"kind": "enrich", "payload": <this>})``.

    ``case_id`` is ``judgments.cases.id`` — the court case, the id that
    ``upsert_enrichment_bundle``, ``set_case_scores`` and ``set_case_enrichment`` take
    (not ``enforcement_cases.id``). ``bundle`` is a vendor report pushed with the job
    (a webhook); without it the configured vendor is asked, and without a vendor the
    case is scored from what is already stored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: UUID
    bundle: EnrichmentBundle | None = None
