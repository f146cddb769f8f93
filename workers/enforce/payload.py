"""The enforce job's payload: which case to plan, and optionally what was asked for."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from workers.enforce.planner import RequestedStep

Trigger = Literal["manual", "sla_sweep", "tier_change", "alert", "import", "demo", "copilot"]


class EnforcePayload(BaseModel):
    """``queue_job({"kind": "enforce", "payload": <this>})``.

    ``case_id`` is ``enforcement_cases.id``. ``requested_action`` makes the planner take
    that step (unless it is already open) instead of consulting the rule table;
    ``trigger`` says who asked, for the timeline and the logs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: UUID
    requested_action: RequestedStep | None = None
    trigger: Trigger = "manual"
    note: str | None = Field(default=None, max_length=500)
