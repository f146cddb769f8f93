"""The deliveries store: every database call of the listener and of ``dragonfly alerts``.

The SQL is in ``queries.sql`` (one named query each); this module binds parameters and
turns rows into models. Functions take a connection and never commit: the caller owns
the transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from workers.alerts.models import AlertEvent, Delivery, PlannedDelivery, Rule
from workers.redact import scrub

Conn = psycopg.Connection[Any]

_NAME = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    """The named queries of queries.sql."""
    text = resources.files("workers.alerts").joinpath("queries.sql").read_text("utf-8")
    found: dict[str, str] = {}
    marks = list(_NAME.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        body = text[mark.end() : end].strip()
        found[mark["name"]] = body.rstrip(";").strip()
    return found


def _query(name: str) -> str:
    return queries()[name]


def _rows(conn: Conn, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_query(name), params)
        return cur.fetchall() if cur.description else []


def load_rules(conn: Conn) -> list[Rule]:
    return [Rule.model_validate(row) for row in _rows(conn, "load_rules")]


def find_tenant(conn: Conn, ref: str) -> tuple[UUID, str] | None:
    """The (id, slug) of the tenant whose id or slug is ``ref``; None: no such tenant."""
    rows = _rows(conn, "find_tenant", {"ref": ref})
    return (rows[0]["id"], rows[0]["slug"]) if rows else None


def tenant_slugs(conn: Conn) -> dict[UUID, str]:
    """Every tenant's slug by id (for listings)."""
    return {row["id"]: row["slug"] for row in _rows(conn, "tenant_slugs")}


def event_contexts(conn: Conn, ids: Sequence[UUID]) -> list[AlertEvent]:
    return [AlertEvent.model_validate(row) for row in _rows(conn, "event_contexts", {"ids": ids})]


def unrouted_events(conn: Conn, *, lookback_seconds: float, limit: int) -> list[AlertEvent]:
    params = {"lookback": float(lookback_seconds), "limit": limit}
    return [AlertEvent.model_validate(row) for row in _rows(conn, "unrouted_events", params)]


def record_routing(
    conn: Conn,
    events: Sequence[AlertEvent],
    planned: Sequence[PlannedDelivery],
    *,
    routed_by: str,
) -> tuple[int, int]:
    """Store the routing of ``events``; returns (events this call routed, deliveries created).

    Events another listener routed first are skipped, their deliveries too.
    """
    if not events:
        return 0, 0
    per_event: dict[UUID, int] = {e.event_id: 0 for e in events}
    for p in planned:
        per_event[p.event.event_id] += 1
    marker_rows = [
        {
            "event_id": str(e.event_id),
            "event_created_at": e.created_at.isoformat(),
            "deliveries": per_event[e.event_id],
        }
        for e in events
    ]
    delivery_rows = [
        {
            "event_id": str(p.event.event_id),
            "case_id": str(p.event.case_id),
            "tenant_id": str(p.event.tenant_id) if p.event.tenant_id is not None else None,
            "event_kind": p.event.event_kind,
            "event_created_at": p.event.created_at.isoformat(),
            "rule": p.rule,
            "sink": p.sink,
            "target": p.target,
            "context": p.event.model_dump(mode="json"),
        }
        for p in planned
    ]
    row = _rows(
        conn,
        "record_routing",
        {
            "events": json.dumps(marker_rows),
            "deliveries": json.dumps(delivery_rows, default=str),
            "routed_by": routed_by,
        },
    )[0]
    return int(row["events"]), int(row["deliveries"])


def advance_cursor(conn: Conn) -> None:
    conn.execute(_query("advance_cursor"))


def prune_routing_markers(conn: Conn, *, lookback_seconds: float) -> int:
    cur = conn.execute(_query("prune_routing_markers"), {"lookback": float(lookback_seconds)})
    return cur.rowcount


def claim_due(conn: Conn, sinks: Iterable[str]) -> Delivery | None:
    """Lock the oldest due delivery for one of ``sinks`` (inside the caller's transaction)."""
    rows = _rows(conn, "claim_due_delivery", {"sinks": list(sinks)})
    return Delivery.model_validate(rows[0]) if rows else None


def mark_delivered(conn: Conn, delivery_id: int, *, attempt: int, by: str) -> float:
    """Record success; returns seconds from the event's creation to now."""
    rows = _rows(conn, "mark_delivered", {"id": delivery_id, "attempt": attempt, "by": by})
    return float(rows[0]["latency"]) if rows else 0.0


def mark_failed(
    conn: Conn, delivery_id: int, *, attempt: int, error: str, dead: bool, delay_seconds: float
) -> None:
    conn.execute(
        _query("mark_failed"),
        {
            "id": delivery_id,
            "attempt": attempt,
            "error": scrub(error)[:2000],
            "dead": dead,
            "delay": float(delay_seconds),
        },
    )


def seconds_until_due(conn: Conn, sinks: Iterable[str]) -> float | None:
    """Seconds until the next delivery for ``sinks`` is due (<= 0: now; None: nothing)."""
    rows = _rows(conn, "seconds_until_due", {"sinks": list(sinks)})
    value = rows[0]["seconds"] if rows else None
    return None if value is None else float(value)


def list_deliveries(
    conn: Conn,
    *,
    status: str | None = None,
    event_id: UUID | None = None,
    case_id: UUID | None = None,
    sink: str | None = None,
    tenant_id: UUID | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    params = {
        "status": status,
        "event_id": event_id,
        "case_id": case_id,
        "sink": sink,
        "tenant_id": tenant_id,
        "limit": limit,
    }
    return _rows(conn, "list_deliveries", params)


def count_deliveries(conn: Conn) -> dict[str, int]:
    return {row["status"]: int(row["n"]) for row in _rows(conn, "count_deliveries")}


def retry_deliveries(
    conn: Conn, *, ids: Sequence[int] | None = None, all_dead: bool = False
) -> list[int]:
    params = {"ids": list(ids) if ids else None, "all_dead": all_dead}
    return [int(row["id"]) for row in _rows(conn, "retry_deliveries", params)]


def upsert_rule(conn: Conn, rule: Rule, *, replace: bool) -> bool:
    """Insert ``rule`` (or overwrite it with ``replace``); False: it exists, unchanged."""
    params = {
        "name": rule.name,
        "tenant_id": rule.tenant_id,
        "description": rule.description,
        "enabled": rule.enabled,
        "event_kinds": rule.event_kinds,
        "tiers": rule.tiers,
        "min_amount": Decimal(rule.min_amount) if rule.min_amount is not None else None,
        "sinks": list(rule.sinks),
        "job_kind": rule.job_kind,
        "job_payload": json.dumps(rule.job_payload),
        "email_to": rule.email_to,
        "replace": replace,
    }
    return bool(_rows(conn, "upsert_rule", params))


def set_rule_enabled(conn: Conn, name: str, *, enabled: bool) -> bool:
    return bool(_rows(conn, "set_rule_enabled", {"name": name, "enabled": enabled}))


def delete_rule(conn: Conn, name: str) -> bool:
    return bool(_rows(conn, "delete_rule", {"name": name}))
