"""The case_copilot boundary models: the job payload, the case context, the brief.

The context is what a backend sees (read from the database in the job's
transaction); the brief is what every backend must return, validated with the
same model whether it came from the rules or from a language model.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from workers.enforce.planner import PlanInput


class CopilotPayload(BaseModel):
    """``queue_job({"kind": "case_copilot", "payload": <this>})``.

    ``case_id`` is an ``enforcement_cases.id``. The other fields are what
    ``request_case_copilot()`` adds; they are informational (the brief is built from the
    database, not from them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: UUID
    judgment_id: UUID | None = None
    case_number: str | None = None
    requested_by: str | None = Field(default=None, max_length=200)
    requested_at: datetime | None = None


class CaseFacts(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    stage: str
    tier: str | None = None
    tier_reason: str | None = None
    collectability_score: Decimal | None = None
    current_balance: Decimal
    asset_flags: dict[str, Any] = Field(default_factory=dict)
    next_action_at: datetime | None = None
    stage_entered_at: datetime
    opened_at: datetime
    closed_at: datetime | None = None
    closure_reason: str | None = None
    levy_status: str | None = None
    garnishment_status: str | None = None
    marshal_status: str | None = None


class JudgmentFacts(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    case_number: str | None = None
    debtor_name: str
    judgment_amount: Decimal
    balance_due: Decimal
    judgment_date: date | None = None
    county: str | None = None
    state: str | None = None
    court: str | None = None
    priority_level: str
    status: str


class PlaintiffFacts(BaseModel):
    """The plaintiff, without contact details: a brief never needs them."""

    model_config = ConfigDict(extra="ignore")

    id: UUID
    name: str
    status: str
    has_email: bool
    has_phone: bool


class ScoreBreakdown(BaseModel):
    model_config = ConfigDict(extra="ignore")

    identity_score: Decimal | None = None
    contactability_score: Decimal | None = None
    asset_score: Decimal | None = None
    recency_amount_score: Decimal | None = None
    adverse_penalty: Decimal | None = None
    collectability_score: Decimal | None = None
    collectability_tier: str | None = None
    last_scored_at: datetime | None = None
    last_enriched_at: datetime | None = None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    occurred_at: datetime
    kind: str
    summary: str | None = None


class OpenAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action_type: str
    status: str
    opened_at: datetime


class Payment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: Decimal
    received_at: datetime
    source: str | None = None


class CaseContext(BaseModel):
    """Everything a backend may use to write a brief."""

    model_config = ConfigDict(extra="forbid")

    as_of: datetime
    case: CaseFacts
    judgment: JudgmentFacts
    plaintiff: PlaintiffFacts
    scores: ScoreBreakdown | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    open_actions: list[OpenAction] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    plan_input: PlanInput

    def inputs_used(self) -> list[str]:
        """The sources a brief was built from, with counts where they vary."""
        used = ["case", "judgment", "plaintiff"]
        if self.scores is not None:
            used.append("score_breakdown")
        used.append(f"timeline:{len(self.timeline)}")
        used.append(f"open_actions:{len(self.open_actions)}")
        used.append(f"payments:{len(self.payments)}")
        return used


Severity = Literal["low", "medium", "high"]


class RiskFlag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    severity: Severity
    detail: str = Field(min_length=1, max_length=500)


class RecommendedAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)
    priority: int = Field(ge=1, le=10, description="1 is most urgent.")


class Brief(BaseModel):
    """The structured brief stored in case_copilot_outputs.brief."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=2000)
    risk_flags: list[RiskFlag] = Field(default_factory=list, max_length=20)
    recommended_actions: list[RecommendedAction] = Field(min_length=1, max_length=10)
    inputs_used: list[str] = Field(default_factory=list, max_length=50)
