"""The job envelope every message carries, and a message as the consumer read it.

``queue_job()`` sends ``{"kind", "idempotency_key", "payload", "requested_by",
"provenance", "tenant", "enqueued_at"}``; :class:`Envelope` validates that shape. ``provenance``
is who enqueued the job, taken by ``queue_job()`` from the session (never from the
payload): a message without one was not enqueued through ``queue_job()`` and counts as
public, the least trusted level (docs/security.md). ``tenant`` is the tenant the job's
rows belong to, found by ``queue_job()`` at the door; the worker acts inside it
(:attr:`Envelope.acting_tenant`). A message that does
not validate -- or whose kind is not its queue's -- is *malformed*: dead-lettered
at once with the validation error, never retried, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workers.runtime.errors import MalformedMessage

TrustLevel = Literal["internal", "operator", "public"]


class Provenance(BaseModel):
    """Who enqueued a job: the trust level, role and JWT identity of the session.

    ``derived``: payload fields the enqueueing RPC formed itself (from the database and
    the session) rather than took from the caller -- ``request_case_copilot`` names the
    case number, request time and audit actor of its job. The policy re-check
    (:mod:`workers.runtime.policy`) lets these through whatever the level.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    level: TrustLevel = "public"
    role: str | None = None
    sub: str | None = None
    email: str | None = None
    derived: frozenset[str] = frozenset()


UNKNOWN_PROVENANCE = Provenance()
"""What a message without provenance counts as: public (fail closed)."""

DEFAULT_TENANT = UUID("00000000-0000-4000-8000-000000000001")
"""``tenancy.default_tenant_id()``: where a job that names no tenant acts, unless the fleet
enqueued it (see :attr:`Envelope.acting_tenant`)."""


class Envelope(BaseModel):
    """The envelope of a job message (the payload is validated by the kind's model)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: str = Field(min_length=1)
    idempotency_key: str = Field(min_length=1, max_length=255)
    payload: dict[str, Any]
    requested_by: str | None = None
    provenance: Provenance = UNKNOWN_PROVENANCE
    tenant: UUID | None = None
    enqueued_at: datetime | None = None

    @field_validator("idempotency_key")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def acting_tenant(self) -> UUID | None:
        """The tenant the worker acts in for this job (``dragonfly.acting_tenant``).

        The envelope's ``tenant`` when it names one. A job that names none (a message older
        than tenants, or a fleet job that crosses tenants, which ``queue_job()`` writes as
        null) crosses tenants only when the fleet enqueued it (provenance ``internal``);
        anyone else's acts in the default tenant, where every row created before tenants
        lives (fail closed: a row of another tenant is then not found). None: no narrowing.
        """
        if self.tenant is not None:
            return self.tenant
        if self.provenance.level == "internal":
            return None
        return DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class Delivery:
    """One read of a message: ``(msg_id, read_ct)`` names it, and fences every write.

    ``read_ct`` is PGMQ's read counter, which is also the attempt number: a read
    that never ran the job is undone when the message is released.
    """

    msg_id: int
    read_ct: int
    message: Any

    @property
    def attempt(self) -> int:
        return self.read_ct


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "message"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def parse_envelope(message: Any, queue: str) -> Envelope:
    """The validated envelope of a message read from ``queue``; MalformedMessage if not."""
    if not isinstance(message, dict):
        raise MalformedMessage(f"envelope must be a JSON object, got {type(message).__name__}")
    try:
        envelope = Envelope.model_validate(message)
    except ValidationError as exc:
        raise MalformedMessage(f"invalid envelope: {_one_line(exc)}") from None
    if envelope.kind != queue:
        raise MalformedMessage(f"kind {envelope.kind!r} does not belong on queue {queue!r}")
    return envelope


def parse_payload(model: type[BaseModel], envelope: Envelope) -> BaseModel:
    """The kind's payload model, validated; MalformedMessage if it does not fit."""
    try:
        return model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise MalformedMessage(f"invalid {envelope.kind} payload: {_one_line(exc)}") from None
