"""The case_copilot handler: read the case context, ask the backend, store the brief.

Two phases. The outside phase (:func:`fetch`, run by the runtime before the job's
transaction, no transaction open, nothing locked): one read
(``dragonfly.case_copilot_context``) and the backend call (rules: instant; LLM: one
HTTP request, retried by the adapter on timeouts/429/5xx), which may take many seconds
without holding anything an operator's RPC on the case would wait for. Then
:func:`handle`, inside the job's transaction: one insert into
``public.case_copilot_outputs``. The insert is keyed on the job's idempotency key, so
even a redelivery that slipped past the runtime's exactly-once record writes no second
brief.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from workers.case_copilot.backends import (
    BackendResult,
    CopilotBackend,
    CopilotBackendError,
    RulesBackend,
)
from workers.case_copilot.models import CaseContext, CopilotPayload
from workers.runtime import FetchContext, JobContext, PermanentError, TransientError

KIND = "case_copilot"
ADAPTER = "copilot_backend"
"""Key of the backend in the runtime's adapters (see ``adapters()``)."""


_CONTEXT = "select dragonfly.case_copilot_context(%s)"
_INSERT = """
insert into public.case_copilot_outputs
    (enforcement_case_id, backend, model, version, latency_ms, brief, requested_by, idempotency_key)
values (%s, %s, %s, %s, %s, %s, %s, %s)
on conflict (idempotency_key) do nothing
returning id
"""


@dataclass(frozen=True)
class CopilotOutcome:
    case_id: UUID
    output_id: UUID | None
    """None when a brief for this job already existed."""
    result: BackendResult


def _call(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> Any:
    """One value from one named query. Database errors propagate: the runtime's
    ``classify`` makes refusals (22xxx, 23xxx, 42xxx, P0xxx, DFxxx) permanent and
    deadlocks or lost connections transient."""
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def load_context(conn: psycopg.Connection[Any], case_id: UUID) -> CaseContext:
    raw = _call(conn, _CONTEXT, (case_id,))
    try:
        return CaseContext.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PermanentError(f"case context invalid at {where}: {err['msg']}") from None


def ask(
    conn: psycopg.Connection[Any], payload: CopilotPayload, *, backend: CopilotBackend
) -> BackendResult:
    """Read the case's context and ask the backend for a brief (the outside phase)."""
    ctx = load_context(conn, payload.case_id)
    try:
        return backend.brief(ctx)
    except CopilotBackendError as exc:
        if exc.transient:
            raise TransientError(f"copilot backend {backend.name}: {exc}") from exc
        raise PermanentError(f"copilot backend {backend.name}: {exc}") from exc


def store(
    conn: psycopg.Connection[Any],
    payload: CopilotPayload,
    result: BackendResult,
    *,
    idempotency_key: str,
) -> CopilotOutcome:
    """Write the brief, inside the caller's transaction."""
    output_id = _call(
        conn,
        _INSERT,
        (
            payload.case_id,
            result.backend,
            result.model,
            result.version,
            result.latency_ms,
            Jsonb(result.brief.model_dump(mode="json")),
            payload.requested_by,
            idempotency_key,
        ),
    )
    return CopilotOutcome(payload.case_id, output_id, result)


def fetch(ctx: FetchContext, payload: CopilotPayload) -> BackendResult:
    """The runtime's outside phase for ``case_copilot`` jobs: the backend's brief."""
    backend: CopilotBackend = ctx.adapters.get(ADAPTER) or RulesBackend()
    return ask(ctx.conn, payload, backend=backend)


def handle(ctx: JobContext, payload: CopilotPayload) -> None:
    """The runtime's entry point for ``case_copilot`` jobs: store what ``fetch`` brought."""
    result: BackendResult = ctx.fetched
    outcome = store(ctx.conn, payload, result, idempotency_key=ctx.envelope.idempotency_key)
    ctx.log.info(
        "copilot_brief_written",
        case_id=str(outcome.case_id),
        output_id=str(outcome.output_id) if outcome.output_id else None,
        backend=outcome.result.backend,
        model=outcome.result.model,
        latency_ms=outcome.result.latency_ms,
        risk_flags=len(outcome.result.brief.risk_flags),
    )
