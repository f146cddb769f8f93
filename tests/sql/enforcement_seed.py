"""Seed data and small helpers for the enforcement RPC tests.

Rows are inserted directly as the test's (superuser) connection; the RPCs under test are
called through :func:`rpc` exactly as PostgREST would call them: ``select public.<rpc>($1)``
with one jsonb argument.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

# Every SQLSTATE an enforcement RPC may raise (docs/rpc.md).
DOCUMENTED_SQLSTATES = frozenset(
    {"22023", "P0002", "23505", "42501", "DF001", "DF002", "DF003", "DF004", "DF005"}
)

ENFORCEMENT_RPCS = (
    "open_enforcement_case",
    "close_enforcement_case",
    "set_enforcement_stage",
    "log_enforcement_event",
    "queue_enforcement_action",
    "record_enforcement_payment",
    "issue_subpoena",
    "record_subpoena_response",
)

VIEWS = (
    "v_enforcement_overview",
    "v_enforcement_recent",
    "v_enforcement_timeline",
    "v_collectability_snapshot",
    "v_priority_pipeline",
)


@dataclass(frozen=True)
class Seeded:
    """A plaintiff, a judgment on it, its court case and (maybe) an open enforcement case."""

    plaintiff_id: str
    judgment_id: str
    court_case_id: str | None
    case_id: str | None


def new_id() -> str:
    return str(uuid.uuid4())


DEFAULT_TENANT = "00000000-0000-4000-8000-000000000001"


def seed_tenant(conn: Conn, slug: str) -> str:
    """A tenant of its own (``slug`` made unique per call); its id."""
    tid = new_id()
    conn.execute(
        "insert into public.tenants (id, slug, name) values (%s, %s, %s)",
        (tid, f"{slug}-{tid[:8]}", f"Tenant {slug}"),
    )
    return tid


def seed_plaintiff(
    conn: Conn, name: str = "Acme Funding LLC", status: str = "new", *, tenant: str | None = None
) -> str:
    """A plaintiff of ``tenant`` (the default tenant when None); its judgments, court cases
    and enforcement cases take its tenant."""
    pid = new_id()
    conn.execute(
        "insert into public.plaintiffs (id, name, status, tenant_id) values (%s, %s, %s, %s)",
        (pid, name, status, tenant or DEFAULT_TENANT),
    )
    return pid


def seed_judgment(
    conn: Conn,
    plaintiff_id: str | None = None,
    *,
    amount: Decimal | str = "1000.00",
    balance: Decimal | str | None = None,
    priority: str = "normal",
    status: str = "active",
    county: str = "Kings",
    state: str = "NY",
) -> str:
    plaintiff_id = plaintiff_id or seed_plaintiff(conn)
    jid = new_id()
    conn.execute(
        """
        insert into public.judgments (id, plaintiff_id, debtor_name, judgment_amount, balance_due,
                                      priority_level, status, county, state)
        values (%s, %s, 'Debtor Doe', %s, %s, %s, %s, %s, %s)
        """,
        (
            jid,
            plaintiff_id,
            amount,
            balance if balance is not None else amount,
            priority,
            status,
            county,
            state,
        ),
    )
    return jid


def seed_court_case(
    conn: Conn, judgment_id: str, *, score: str | None = None, tier: str | None = None
) -> str:
    cid = new_id()
    conn.execute(
        """
        insert into judgments.cases (id, judgment_id, case_number, collectability_score,
                                     collectability_tier)
        values (%s, %s, %s, %s, %s)
        """,
        (cid, judgment_id, f"CV-{cid[:8]}", score, tier),
    )
    return cid


def seed(
    conn: Conn,
    *,
    open_case: bool = True,
    score: str | None = "80",
    tier: str | None = "tier0",
    amount: str = "1000.00",
    priority: str = "normal",
    judgment_status: str = "active",
    tenant: str | None = None,
) -> Seeded:
    """Plaintiff (of ``tenant``, else the default tenant) + judgment + court case, and an open
    enforcement case through the RPC."""
    pid = seed_plaintiff(conn, tenant=tenant)
    jid = seed_judgment(conn, pid, amount=amount, priority=priority, status=judgment_status)
    ccid = seed_court_case(conn, jid, score=score, tier=tier)
    case_id = None
    if open_case:
        case_id = rpc(conn, "open_enforcement_case", {"judgment_id": jid, "created_by": "seed"})
    return Seeded(pid, jid, ccid, str(case_id) if case_id else None)


def rpc(conn: Conn, name: str, payload: Any) -> Any:
    """Call ``public.<name>(payload jsonb)`` and return its single value."""
    row = conn.execute(f"select public.{name}(%s)", (Jsonb(payload),)).fetchone()
    assert row is not None
    return row[0]


def refused(conn: Conn, sqlstate: str, name: str, payload: Any) -> psycopg.Error:
    """Call the RPC in a savepoint; assert it fails with ``sqlstate`` and changed nothing."""
    before = fingerprint(conn)
    with pytest.raises(psycopg.Error) as caught, conn.transaction():
        rpc(conn, name, payload)
    assert caught.value.sqlstate == sqlstate, (caught.value.sqlstate, str(caught.value))
    assert fingerprint(conn) == before
    return caught.value


def one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def act_as(conn: Conn, role: str, sub: str | None = None, email: str | None = None) -> None:
    """Become ``role`` for the rest of the current transaction, as PostgREST does."""
    conn.execute(f"set local role {role}")
    claims = {"role": role, "sub": sub or "6f1d7c4e-0000-4000-8000-000000000001"}
    if email is not None:
        claims["email"] = email
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))


DIGESTED_TABLES = (
    "public.enforcement_cases",
    "public.enforcement_events",
    "public.enforcement_history",
    "public.enforcement_actions",
    "public.enforcement_documents",
    "public.plaintiff_tasks",
    "public.judgments",
)


def digest(conn: Conn, tables: tuple[str, ...]) -> tuple[Any, ...]:
    """One md5 per table over all of its rows: equal digests mean nothing was written."""
    query = "select " + ", ".join(
        f"(select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t)"
        for table in tables
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def fingerprint(conn: Conn) -> tuple[Any, ...]:
    """A digest of every row of every table the enforcement RPCs write."""
    return digest(conn, DIGESTED_TABLES)


def valid_call(db: Conn, name: str, seeded: Seeded) -> tuple[str, Any]:
    """A payload that succeeds for ``name`` (preparing what it needs as the test's superuser)."""
    cid = seeded.case_id
    payloads: dict[str, Callable[[], Any]] = {
        "open_enforcement_case": lambda: {"judgment_id": seed(db, open_case=False).judgment_id},
        "close_enforcement_case": lambda: {"case_id": cid, "status": "withdrawn"},
        "set_enforcement_stage": lambda: {"case_id": cid, "stage": "asset_search"},
        "log_enforcement_event": lambda: {"case_id": cid, "event_kind": "note_added"},
        "queue_enforcement_action": lambda: {"case_id": cid, "action_type": "marshal"},
        "record_enforcement_payment": lambda: {"case_id": cid, "amount": "10.00"},
        "issue_subpoena": lambda: {"case_id": cid, "recipient": "Bank", "document_path": "s/a.pdf"},
        "record_subpoena_response": lambda: (
            rpc(db, "issue_subpoena", {"case_id": cid, "recipient": "B", "document_path": "s/b"})
            and {"case_id": cid, "outcome": "partial"}
        ),
        "refresh_enforcement_metrics": lambda: None,
    }
    return name, payloads[name]()
