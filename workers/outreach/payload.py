"""The outreach job's payload."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator


class OutreachPayload(BaseModel):
    """``queue_job({"kind": "outreach", "payload": <this>})``.

    Give a ``reason`` (why this plaintiff is contacted, e.g. ``new_judgment``) or a
    ``campaign`` (e.g. ``2026-q1-reactivation``), or both. ``channel`` forces email or a
    call task; ``auto`` lets the rule table in docs/outreach.md choose. ``outreach_key``
    is set only on the continuation job a quiet-hours deferral enqueues: it carries the
    first job's idempotency key so that the whole chain sends at most one email.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    plaintiff_id: UUID
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    campaign: str | None = Field(default=None, min_length=1, max_length=200)
    channel: Literal["auto", "email", "call"] = "auto"
    outreach_key: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _reason_or_campaign(self) -> OutreachPayload:
        if self.reason is None and self.campaign is None:
            raise ValueError("give a reason or a campaign (or both)")
        return self
