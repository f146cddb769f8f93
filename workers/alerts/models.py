"""Pydantic models at the listener's boundaries: what NOTIFY says, what the database returns."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SinkName = Literal["slack", "email", "queue"]
SINK_NAMES: tuple[SinkName, ...] = ("slack", "email", "queue")
DeliveryStatus = Literal["pending", "failed", "delivered", "dead"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "failed", "delivered", "dead")

EVENTS_CHANNEL = "enforcement_events_channel"
"""NOTIFY channel of log_enforcement_event(): one notification per committed event."""
WAKEUP_CHANNEL = "dragonfly_alerts_wakeup"
"""NOTIFY channel of the alert tables: deliveries became due (payload ``retry``) or the
rules changed (payload ``rules``)."""
RULES_CHANGED = "rules"


class Notification(BaseModel):
    """The payload of a notification on ``enforcement_events_channel``.

    Only ``event_id`` is used: the event itself is read from the table, so a notification
    is a wake-up and never the record.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID
    case_id: UUID | None = None
    kind: str | None = None


class AlertEvent(BaseModel):
    """An enforcement event with its case context (a ``dragonfly.alert_event`` row).

    Stored as a delivery's ``context``, so a message shows the case as it was routed.
    """

    model_config = ConfigDict(frozen=True)

    event_id: UUID
    case_id: UUID
    judgment_id: UUID | None = None
    event_kind: str
    occurred_at: datetime
    created_at: datetime
    payload: dict[str, Any] = Field(default_factory=dict)
    document_path: str | None = None
    actor: str | None = None
    case_number: str | None = None
    debtor_name: str | None = None
    tier: str | None = None
    stage: str
    balance: Decimal
    case_closed: bool = False
    tenant_id: UUID | None = None
    """The case's tenant (None in deliveries routed before alerts named tenants)."""
    tenant_slug: str | None = None

    @property
    def tenant_label(self) -> str:
        """``acme (<tenant id>)``: the tenant's slug and id, as every message's fields name it
        (``unknown`` for a delivery routed before alerts named tenants)."""
        if self.tenant_id is None:
            return "unknown"
        return f"{self.tenant_slug or '?'} ({self.tenant_id})"

    @property
    def event_amount(self) -> Decimal | None:
        """The payload's ``amount`` (a number or a numeric string), if it has one."""
        raw = self.payload.get("amount")
        if isinstance(raw, bool) or raw is None:
            return None
        if isinstance(raw, int | float | str):
            try:
                value = Decimal(str(raw).strip())
            except InvalidOperation:
                return None
            return value if value.is_finite() else None
        return None

    @property
    def amount(self) -> Decimal:
        """The alert amount: the event's own amount, else the case's current balance."""
        own = self.event_amount
        return own if own is not None else self.balance


class Rule(BaseModel):
    """A ``dragonfly.alert_rules`` row."""

    model_config = ConfigDict(frozen=True)

    name: str
    tenant_id: UUID | None = None
    """The tenant whose events the rule routes; None: every tenant's."""
    description: str | None = None
    enabled: bool = True
    event_kinds: list[str] | None = None
    tiers: list[str] | None = None
    min_amount: Decimal | None = None
    sinks: list[SinkName]
    job_kind: str | None = None
    job_payload: dict[str, Any] = Field(default_factory=dict)
    email_to: list[str] | None = None

    def target(self, sink: SinkName) -> dict[str, Any]:
        """The sink settings a delivery keeps from this rule."""
        if sink == "queue":
            return {"job_kind": self.job_kind, "job_payload": self.job_payload}
        if sink == "email" and self.email_to:
            return {"email_to": list(self.email_to)}
        return {}


class PlannedDelivery(BaseModel):
    """One (event, rule, sink) the routing decided on, before it is stored."""

    model_config = ConfigDict(frozen=True)

    event: AlertEvent
    rule: str
    sink: SinkName
    target: dict[str, Any] = Field(default_factory=dict)


class Delivery(BaseModel):
    """A claimed ``dragonfly.alert_deliveries`` row."""

    model_config = ConfigDict(frozen=True)

    id: int
    event_id: UUID
    case_id: UUID
    event_kind: str
    event_created_at: datetime
    rule: str
    sink: SinkName
    target: dict[str, Any] = Field(default_factory=dict)
    context: AlertEvent
    status: DeliveryStatus
    attempts: int
    last_error: str | None = None
    created_at: datetime
    tenant_id: UUID | None = None

    @property
    def reference(self) -> str:
        """A stable reference shown in every message, so a repeated alert is recognisable."""
        return f"alert {self.id} · event {self.event_id} · rule {self.rule}"

    @property
    def idempotency_key(self) -> str:
        """The key of this delivery's effect (queue_job key, email Message-ID)."""
        return f"alert:{self.event_id}:{self.rule}"
