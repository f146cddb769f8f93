"""The six public views follow the tenants (migrations 20261203090000, 20261203110100-110300).

Each view is security_invoker. Read as a signed-in member of tenant A (role ``authenticated``
with the JWT ``sub`` of a ``tenant_members`` row), a view shows exactly A's rows; read as a
signed-in operator of tenant B, or as ``enforcement_operator`` narrowed to B, it shows none of
A's, and asking for one of A's rows answers exactly like asking for a row that does not exist.
A signed-in non-member sees nothing, anon may not read at all, and v_case_copilot_latest stays
service_role's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.sql.enforcement_seed import act_as, one, rpc, seed_court_case, seed_judgment
from tests.sql.test_tenant_rollup import Tenant, make_tenant, new_id

Conn = psycopg.Connection[Any]

# What identifies a row of each view, and where its tenant is.
KEYS = {
    "v_enforcement_overview": "tenant_id",
    "v_enforcement_recent": "case_id",
    "v_enforcement_timeline": "case_id",
    "v_collectability_snapshot": "judgment_id",
    "v_priority_pipeline": "judgment_id",
}
MEMBER_VIEWS = tuple(KEYS)
TENANT_COLUMN = {
    "v_enforcement_overview": True,
    "v_enforcement_recent": True,
    "v_enforcement_timeline": False,  # read per case_id; the case's tenant
    "v_collectability_snapshot": True,
    "v_priority_pipeline": True,
    "v_case_copilot_latest": True,
}


@dataclass(frozen=True)
class Book:
    tenant: Tenant
    cases: list[str]
    judgments: list[str]  # every judgment, with a case or not

    def keys(self, view: str) -> set[str]:
        """The ids a reader of this tenant must see in ``view``."""
        if KEYS[view] == "tenant_id":
            return {self.tenant.id}
        return set(self.cases) if KEYS[view] == "case_id" else set(self.judgments)


def book(conn: Conn, tenant: Tenant, amounts: list[str]) -> Book:
    """One plaintiff of ``tenant`` with a tier0 judgment per amount, each with an open case
    (events, history, a subpoena: an action and a task, a copilot brief), plus one scored
    judgment without a case."""
    pid = new_id()
    conn.execute(
        "insert into public.plaintiffs (id, tenant_id, name, status) values (%s, %s, %s, 'new')",
        (pid, tenant.id, f"Plaintiff {tenant.id[:8]}"),
    )
    cases, judgments = [], []
    for amount in amounts:
        jid = seed_judgment(conn, pid, amount=amount, priority="high")
        seed_court_case(conn, jid, score="90", tier="tier0")
        case = str(rpc(conn, "open_enforcement_case", {"judgment_id": jid, "created_by": "t"}))
        rpc(conn, "issue_subpoena", {"case_id": case, "recipient": "Bank", "document_path": "s/a"})
        conn.execute(
            "insert into public.case_copilot_outputs (enforcement_case_id, backend, version, "
            "latency_ms, brief) values (%s, 'rules', 'v1', 1, %s)",
            (
                case,
                Jsonb(
                    {
                        "summary": "s",
                        "risk_flags": [],
                        "recommended_actions": [],
                        "inputs_used": [],
                    }
                ),
            ),
        )
        cases.append(case)
        judgments.append(jid)
    spare = seed_judgment(conn, pid, amount="1.00")
    seed_court_case(conn, spare, score="90", tier="tier0")
    judgments.append(spare)
    return Book(tenant, cases, judgments)


@pytest.fixture
def books(db: Conn) -> tuple[Book, Book]:
    a = book(db, make_tenant(db, "alpha"), ["500.00", "900.00"])
    b = book(db, make_tenant(db, "bravo"), ["700.00"])
    return a, b


def read_keys(db: Conn, view: str) -> set[str]:
    rows = db.execute(f"select {KEYS[view]}::text from public.{view}").fetchall()
    return {r[0] for r in rows}


def as_member(db: Conn, sub: str) -> None:
    act_as(db, "authenticated", sub, "ops@example.test")


@pytest.mark.parametrize("view", MEMBER_VIEWS)
def test_a_member_reads_exactly_their_tenants_rows(
    db: Conn, books: tuple[Book, Book], view: str
) -> None:
    a, b = books
    for mine, other in ((a, b), (b, a)):
        with db.transaction(force_rollback=True):
            as_member(db, mine.tenant.operator)
            assert read_keys(db, view) == mine.keys(view)
            assert not read_keys(db, view) & other.keys(view)


@pytest.mark.parametrize("view", MEMBER_VIEWS)
def test_an_operator_of_another_tenant_finds_nothing_of_a(
    db: Conn, books: tuple[Book, Book], view: str
) -> None:
    a, b = books
    key = KEYS[view]
    targets = sorted(a.keys(view))
    missing = new_id()

    def ask(value: str) -> list[tuple[Any, ...]]:
        return db.execute(f"select * from public.{view} where {key} = %s", (value,)).fetchall()

    # A signed-in operator of B, and the enforcement_operator role narrowed to B.
    for become in (
        lambda: as_member(db, b.tenant.operator),
        lambda: (
            act_as(db, "enforcement_operator"),
            db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (b.tenant.id,)),
        ),
    ):
        with db.transaction(force_rollback=True):
            become()
            assert read_keys(db, view) == b.keys(view)
            # One of A's rows answers like a row that does not exist.
            for target in targets:
                assert ask(target) == ask(missing) == []


@pytest.mark.parametrize("view", MEMBER_VIEWS)
def test_a_non_member_sees_nothing_and_anon_may_not_read(
    db: Conn, books: tuple[Book, Book], view: str
) -> None:
    stranger = new_id()
    db.execute("insert into auth.users (id, email) values (%s, 'x@example.test')", (stranger,))
    with db.transaction(force_rollback=True):
        as_member(db, stranger)
        assert read_keys(db, view) == set()
    with db.transaction(force_rollback=True):
        act_as(db, "anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(f"select * from public.{view}")


def test_the_copilot_view_stays_internal_and_names_the_tenant(
    db: Conn, books: tuple[Book, Book]
) -> None:
    a, b = books
    for role in ("anon", "authenticated", "enforcement_operator", "dragonfly_worker"):
        with db.transaction(force_rollback=True):
            if role == "authenticated":
                as_member(db, a.tenant.operator)
            else:
                act_as(db, role)
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                db.execute("select * from public.v_case_copilot_latest")
    with db.transaction(force_rollback=True):
        act_as(db, "service_role")
        rows = db.execute(
            "select case_id::text, tenant_id::text from public.v_case_copilot_latest"
        ).fetchall()
    assert set(rows) == {(c, a.tenant.id) for c in a.cases} | {(c, b.tenant.id) for c in b.cases}


def test_the_console_views_name_the_tenant(db: Conn, books: tuple[Book, Book]) -> None:
    a, _ = books
    for view, has in TENANT_COLUMN.items():
        last = one(
            db,
            "select column_name from information_schema.columns where table_schema = 'public' "
            "and table_name = %s order by ordinal_position desc limit 1",
            (view,),
        )
        assert (last == "tenant_id") is has, view
    with db.transaction(force_rollback=True):
        as_member(db, a.tenant.operator)
        for view in ("v_enforcement_recent", "v_collectability_snapshot", "v_priority_pipeline"):
            tenants = {r[0] for r in db.execute(f"select tenant_id::text from public.{view}")}
            assert tenants == {a.tenant.id}, view


def test_the_pipeline_ranks_each_tenant_on_its_own(db: Conn, books: tuple[Book, Book]) -> None:
    """tier_rank is the position within (tenant, collectability tier): what a single-tenant
    deployment of each book would show, whoever reads both."""
    a, b = books
    expected = {
        a.judgments[1]: (a.tenant.id, 1),  # 900.00
        a.judgments[0]: (a.tenant.id, 2),  # 500.00
        b.judgments[0]: (b.tenant.id, 1),  # 700.00: first of B, though below A's first
    }
    rows = db.execute(
        "select judgment_id::text, tenant_id::text, tier_rank from public.v_priority_pipeline "
        "where priority_level = 'high'"
    ).fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == expected
    # The view's order: tenant by tenant, each in ranking order.
    tenants = [r[1] for r in rows]
    assert tenants == sorted(tenants)
    with db.transaction(force_rollback=True):
        as_member(db, a.tenant.operator)
        mine = db.execute(
            "select judgment_id::text, tier_rank from public.v_priority_pipeline "
            "where priority_level = 'high'"
        ).fetchall()
    assert mine == [(a.judgments[1], 1), (a.judgments[0], 2)]


def test_a_members_case_timeline_is_the_whole_stream(db: Conn, books: tuple[Book, Book]) -> None:
    a, _ = books
    case = a.cases[0]
    everything = db.execute(
        "select entry_type, entry_id from public.v_enforcement_timeline where case_id = %s",
        (case,),
    ).fetchall()
    assert {r[0] for r in everything} == {"history", "event", "task", "action"}
    with db.transaction(force_rollback=True):
        as_member(db, a.tenant.operator)
        mine = db.execute(
            "select entry_type, entry_id from public.v_enforcement_timeline where case_id = %s",
            (case,),
        ).fetchall()
    assert mine == everything
