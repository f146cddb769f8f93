"""Roles against tenants over every table and view, read the way PostgREST reads them: the
role Supabase Auth issues (or the key's role), its claims plus the access token hook's.

Two tenants, a and b, each with a case that has events, history, an action, a document and
tasks. For every relation and every caller, the rows the caller sees are counted per tenant
(the tenant of a row is looked up as the owner, so the count does not depend on what the
caller could join): members see exactly their tenants' rows, nobody sees a row of another
tenant, and anon and the fleet's own tables stay closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.security.tenants import User, make_tenant, make_user, member, sign_in
from tests.sql.enforcement_seed import DEFAULT_TENANT, act_as, one, rpc, seed

Conn = psycopg.Connection[Any]

CALLERS = (
    "anon",
    "non_member",
    "viewer_a",
    "operator_a",
    "operator_b",
    "admin_a",
    "enforcement_operator",
    "service_role",
)

# Which tenants each caller reaches (None: the relation is not granted to it at all).
REACH: dict[str, set[str]] = {
    "non_member": set(),
    "viewer_a": {"a"},
    "operator_a": {"a"},
    "operator_b": {"b"},
    "admin_a": {"a"},
    "enforcement_operator": {"a", "b"},
    "service_role": {"a", "b"},
}

# How a row of each relation names its tenant (evaluated with the test's owner-run helpers,
# so the caller's own visibility of parent rows does not change the attribution).
TENANT_OF: dict[str, str] = {
    "public.plaintiffs": "tenant_id",
    "public.judgments": "tenant_id",
    "judgments.cases": "tenant_id",
    "public.enforcement_cases": "tenant_id",
    "public.enforcement_events": "pg_temp.case_tenant(enforcement_case_id)",
    "public.enforcement_history": "pg_temp.case_tenant(enforcement_case_id)",
    "public.enforcement_actions": "pg_temp.case_tenant(enforcement_case_id)",
    "public.enforcement_documents": "pg_temp.case_tenant(enforcement_case_id)",
    "public.plaintiff_tasks": "pg_temp.case_tenant(enforcement_case_id)",
    "public.tenants": "id",
    "public.tenant_members": "tenant_id",
    "public.v_enforcement_recent": "pg_temp.case_tenant(case_id)",
    "public.v_enforcement_timeline": "pg_temp.case_tenant(case_id)",
    "public.v_collectability_snapshot": "pg_temp.judgment_tenant(judgment_id)",
    "public.v_priority_pipeline": "pg_temp.judgment_tenant(judgment_id)",
    "public.v_case_copilot_latest": "pg_temp.case_tenant(case_id)",
}

# Readable by signed-in members and the operator role, narrowed to their tenants.
MEMBER_READABLE = {
    "public.plaintiffs",
    "public.judgments",
    "judgments.cases",
    "public.enforcement_cases",
    "public.enforcement_events",
    "public.enforcement_history",
    "public.enforcement_actions",
    "public.enforcement_documents",
    "public.plaintiff_tasks",
    "public.tenants",
    "public.v_enforcement_recent",
    "public.v_enforcement_timeline",
    "public.v_collectability_snapshot",
    "public.v_priority_pipeline",
}


@pytest.fixture
def book(db: Conn) -> dict[str, Any]:
    """Tenants a and b with one busy case each, and one user per caller."""
    tenants = {"a": make_tenant(db, "a"), "b": make_tenant(db, "b")}
    cases = {}
    for name, tenant_id in tenants.items():
        case_id = str(seed(db, tenant=tenant_id).case_id)
        rpc(db, "log_enforcement_event", {"case_id": case_id, "event_kind": "note_added"})
        rpc(db, "set_enforcement_stage", {"case_id": case_id, "stage": "asset_search"})
        rpc(db, "queue_enforcement_action", {"case_id": case_id, "action_type": "marshal"})
        rpc(
            db,
            "issue_subpoena",
            {"case_id": case_id, "recipient": "Bank", "document_path": f"s/{name}.pdf"},
        )
        db.execute(
            "insert into public.case_copilot_outputs (enforcement_case_id, backend, model, version,"
            " brief, requested_by, latency_ms) values (%s, 'rules', 'rules', '1', '{}', 't', 1)",
            (case_id,),
        )
        cases[name] = case_id
    users: dict[str, User] = {
        "non_member": make_user(db, "stranger@example.test"),
        "viewer_a": member(db, tenants["a"], "viewer"),
        "operator_a": member(db, tenants["a"], "operator"),
        "operator_b": member(db, tenants["b"], "operator"),
        "admin_a": member(db, tenants["a"], "admin"),
    }
    for fn, table, key in (
        ("case_tenant", "public.enforcement_cases", "id"),
        ("judgment_tenant", "public.judgments", "id"),
    ):
        db.execute(
            f"create function pg_temp.{fn}(p uuid) returns uuid language sql stable"
            f" security definer as $$ select tenant_id from {table} where {key} = p $$"
        )
        for role in ("anon", "authenticated", "enforcement_operator", "service_role"):
            db.execute(f"grant execute on function pg_temp.{fn}(uuid) to {role}")
    names = {v: k for k, v in tenants.items()} | {DEFAULT_TENANT: "default"}
    return {"tenants": tenants, "cases": cases, "users": users, "names": names}


def enter(db: Conn, caller: str, book: dict[str, Any]) -> None:
    """Become ``caller`` for the rest of the current transaction."""
    if caller in book["users"]:
        sign_in(db, book["users"][caller])
    elif caller == "anon":
        act_as(db, "anon")
    else:
        act_as(db, caller)


def seen(db: Conn, relation: str, book: dict[str, Any]) -> dict[str, int] | None:
    """Rows of ``relation`` the current caller sees, per tenant name; None when denied."""
    query = f"select {TENANT_OF[relation]}::text, count(*) from {relation} group by 1"
    try:
        with db.transaction():
            rows = db.execute(query).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return {book["names"].get(t, str(t)): n for t, n in rows}


def as_caller(db: Conn, caller: str, book: dict[str, Any], read: Callable[[], Any]) -> Any:
    with db.transaction(force_rollback=True):
        enter(db, caller, book)
        return read()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("relation", sorted(TENANT_OF))
def test_a_caller_sees_exactly_the_tenants_it_reaches(
    db: Conn, book: dict[str, Any], caller: str, relation: str
) -> None:
    everything = seen(db, relation, book)
    assert everything is not None
    if relation not in ("public.tenants", "public.tenant_members"):
        assert everything.get("a", 0) >= 1, everything
        assert everything.get("b", 0) >= 1, everything
    got = as_caller(db, caller, book, lambda: seen(db, relation, book))
    if caller == "anon":
        assert got is None, f"anon reads {relation}"
        return
    if relation == "public.v_case_copilot_latest":
        # Briefs are the service's (docs/copilot.md): only service_role reads them.
        assert (got is None) == (caller != "service_role"), got
        if got is None:
            return
    elif relation == "public.tenant_members":
        expected_members = member_rows(db, caller, book)
        assert got == expected_members, (caller, got)
        return
    elif relation not in MEMBER_READABLE:
        raise AssertionError(relation)
    assert got is not None, f"{caller} may not read {relation}"
    reach = REACH[caller]
    if caller in ("enforcement_operator", "service_role"):
        assert got == everything
    else:
        assert set(got) <= reach, (caller, relation, got)
        assert {t: got[t] for t in got} == {t: everything[t] for t in reach if t in everything}


def member_rows(db: Conn, caller: str, book: dict[str, Any]) -> dict[str, int]:
    """The membership rows a caller should see: its own, and every row of the tenants it
    administers (the service tooling administers every tenant)."""
    counts = {
        book["names"][t]: n
        for t, n in db.execute(
            "select tenant_id::text, count(*) from public.tenant_members group by 1"
        ).fetchall()
    }
    if caller in ("enforcement_operator", "service_role"):
        return counts
    if caller == "admin_a":
        return {"a": counts["a"]}
    return {caller[-1]: 1} if caller != "non_member" else {}


@pytest.mark.parametrize("caller", CALLERS)
def test_the_overview_counts_only_the_tenants_a_caller_reaches(
    db: Conn, book: dict[str, Any], caller: str
) -> None:
    open_cases = {
        name: one(
            db,
            "select count(*) from public.enforcement_cases"
            " where tenant_id = %s and closed_at is null",
            (tenant_id,),
        )
        for name, tenant_id in book["tenants"].items()
    }

    def totals() -> Any:
        try:
            with db.transaction():
                return one(
                    db,
                    "select coalesce(sum(case_count), 0)::int from public.v_enforcement_overview",
                )
        except psycopg.errors.InsufficientPrivilege:
            return None

    got = as_caller(db, caller, book, totals)
    if caller == "anon":
        assert got is None
        return
    if caller in ("enforcement_operator", "service_role"):
        everything = one(
            db, "select count(*)::int from public.enforcement_cases where closed_at is null"
        )
        assert got == everything
        return
    assert got == sum(open_cases[t] for t in REACH[caller]), (caller, got)


INTERNAL_TABLES = (
    "public.entities",
    "public.plaintiff_call_attempts",
    "public.plaintiff_status_history",
    "public.outreach_attempts",
    "public.outreach_emails",
    "public.case_copilot_outputs",
    "enrichment.case_signals",
    "enrichment.contacts",
    "enrichment.assets",
    "intake.simplicity_import_runs",
    "intake.simplicity_import_rows",
)


@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "service_role"])
def test_the_fleets_own_tables_stay_closed_to_every_api_caller(
    db: Conn, book: dict[str, Any], caller: str
) -> None:
    def probe() -> list[str]:
        readable = []
        for table in INTERNAL_TABLES:
            try:
                with db.transaction():
                    db.execute(f"select 1 from {table} limit 1").fetchall()
                readable.append(table)
            except psycopg.errors.InsufficientPrivilege:
                pass
        return readable

    assert as_caller(db, caller, book, probe) == []
