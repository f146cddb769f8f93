"""Who may call which enforcement RPC and read which view, exercised the way PostgREST does
it (``set local role`` + ``request.jwt.claims``) and checked against the catalog; plus the
hygiene every SECURITY DEFINER function and policy must have.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.enforcement_seed import (
    ENFORCEMENT_RPCS,
    VIEWS,
    Seeded,
    act_as,
    one,
    rpc,
    seed,
    valid_call,
)

Conn = psycopg.Connection[Any]

ROLES = ("anon", "authenticated", "enforcement_operator", "dragonfly_worker", "service_role")
ALL_RPCS = (*ENFORCEMENT_RPCS, "refresh_enforcement_metrics")

# The role matrix (docs/rpc.md).
RPC_MATRIX: dict[str, set[str]] = {
    "anon": set(),
    # Signed-in operators arrive as authenticated; the tenant check inside decides.
    "authenticated": set(ENFORCEMENT_RPCS),
    "enforcement_operator": set(ENFORCEMENT_RPCS),
    "dragonfly_worker": {
        "log_enforcement_event",
        "queue_enforcement_action",
        "set_enforcement_stage",
        "issue_subpoena",
        "refresh_enforcement_metrics",
    },
    "service_role": set(ALL_RPCS),
}
VIEW_MATRIX: dict[str, set[str]] = {
    "anon": set(),
    # Signed-in members read the views, RLS narrowing them to their tenants
    # (tests/sql/test_tenant_views.py).
    "authenticated": set(VIEWS),
    "enforcement_operator": set(VIEWS),
    "dragonfly_worker": set(),
    "service_role": set(VIEWS),
}
OPERATOR_TABLES = (
    "public.enforcement_cases",
    "public.enforcement_events",
    "public.enforcement_history",
    "public.enforcement_actions",
    "public.enforcement_documents",
    "public.plaintiff_tasks",
    "public.judgments",
    "public.plaintiffs",
    "judgments.cases",
)
OPERATOR_SUB = "0a0a0a0a-1111-4222-8333-444444444444"


def call_as(db: Conn, role: str, name: str, payload: Any) -> str | None:
    """Call as ``role`` in a rolled-back savepoint; None on success, else the SQLSTATE."""
    try:
        with db.transaction(force_rollback=True):
            act_as(db, role, OPERATOR_SUB)
            if name == "refresh_enforcement_metrics":
                db.execute("select public.refresh_enforcement_metrics()")
            else:
                rpc(db, name, payload)
    except psycopg.Error as error:
        return error.sqlstate
    return None


@pytest.mark.parametrize("role", ROLES)
def test_rpc_matrix_by_calling(db: Conn, enf_case: Seeded, role: str) -> None:
    outcome = {}
    for name in ALL_RPCS:
        with db.transaction(force_rollback=True):
            _, payload = valid_call(db, name, enf_case)
            outcome[name] = call_as(db, role, name, payload)
    expected = {name: (None if name in RPC_MATRIX[role] else "42501") for name in ALL_RPCS}
    if role == "authenticated":
        # A signed-in user who is no member of the case's tenant reaches no row: the answer
        # of a missing one (tests/security/test_rpc_tenancy.py calls as members).
        expected.update(dict.fromkeys(ENFORCEMENT_RPCS, "P0002"))
    assert outcome == expected


@pytest.mark.parametrize("role", ROLES)
def test_rpc_matrix_in_the_catalog(db: Conn, role: str) -> None:
    granted = {
        name
        for name in ALL_RPCS
        if one(
            db,
            "select has_function_privilege(%s, %s, 'execute')",
            (role, f"public.{name}({'' if name == 'refresh_enforcement_metrics' else 'jsonb'})"),
        )
    }
    assert granted == RPC_MATRIX[role]


@pytest.mark.parametrize("role", ROLES)
def test_view_matrix_by_reading_and_in_the_catalog(db: Conn, enf_case: Seeded, role: str) -> None:
    readable = set()
    for view in VIEWS:
        try:
            with db.transaction(force_rollback=True):
                act_as(db, role, OPERATOR_SUB)
                db.execute(f"select * from public.{view} limit 5").fetchall()
            readable.add(view)
        except psycopg.errors.InsufficientPrivilege:
            pass
    assert readable == VIEW_MATRIX[role]
    in_catalog = {
        view
        for view in VIEWS
        if one(db, "select has_table_privilege(%s, %s, 'select')", (role, f"public.{view}"))
    }
    assert in_catalog == VIEW_MATRIX[role]


def test_operator_reads_but_never_writes_the_tables(db: Conn) -> None:
    for table in OPERATOR_TABLES:
        assert one(db, "select has_table_privilege('enforcement_operator', %s, 'select')", (table,))
        for privilege in ("insert", "update", "delete", "truncate"):
            assert not one(
                db,
                "select has_table_privilege('enforcement_operator', %s, %s)",
                (table, privilege),
            ), (table, privilege)
        for role in ("anon", "dragonfly_worker"):
            assert not one(
                db,
                "select has_table_privilege(%s, %s, 'select,insert,update,delete')",
                (role, table),
            ), (role, table)
        # Signed-in members read them under the tenant policies, and never write.
        assert one(db, "select has_table_privilege('authenticated', %s, 'select')", (table,))
        assert not one(
            db, "select has_table_privilege('authenticated', %s, 'insert,update,delete')", (table,)
        ), table


def test_operator_sees_the_data_through_the_views_and_the_jwt_names_the_actor(
    db: Conn, enf_case: Seeded
) -> None:
    with db.transaction(force_rollback=True):
        act_as(db, "enforcement_operator", OPERATOR_SUB)
        new_case = rpc(db, "open_enforcement_case", {"judgment_id": seed_judgment_as_admin(db)})
        assert (
            one(db, "select created_by from public.enforcement_cases where id = %s", (new_case,))
            == OPERATOR_SUB
        )
        assert (
            one(
                db,
                "select count(*) from public.v_enforcement_timeline where case_id = %s",
                (enf_case.case_id,),
            )
            >= 2
        )
        assert one(db, "select count(*) from public.v_priority_pipeline") >= 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(
                "update public.enforcement_cases set current_balance = 0 where id = %s",
                (enf_case.case_id,),
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute(
                "insert into public.enforcement_events (enforcement_case_id, event_kind) "
                "values (%s, 'note_added')",
                (enf_case.case_id,),
            )


def seed_judgment_as_admin(db: Conn) -> str:
    """A judgment created as the superuser even while a role is active."""
    db.execute("reset role")
    jid = seed(db, open_case=False).judgment_id
    db.execute("set local role enforcement_operator")
    return jid


def test_children_inherit_the_visibility_of_their_case(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    rpc(db, "issue_subpoena", {"case_id": cid, "recipient": "Bank", "document_path": "s/a.pdf"})
    other = seed(db)
    rpc(db, "issue_subpoena", {"case_id": other.case_id, "recipient": "B", "document_path": "s/b"})
    children = (
        "public.enforcement_documents",
        "public.enforcement_events",
        "public.enforcement_history",
        "public.enforcement_actions",
        "public.plaintiff_tasks",
    )

    def visible(table: str, case_id: str | None) -> int:
        count: int = one(
            db, f"select count(*) from {table} where enforcement_case_id = %s", (case_id,)
        )
        return count

    with db.transaction(force_rollback=True):
        act_as(db, "enforcement_operator", OPERATOR_SUB)
        assert all(visible(t, cid) > 0 for t in children)
    with db.transaction(force_rollback=True):
        # Narrow case visibility (as a per-team policy would): hide enf_case from operators.
        db.execute(
            'create policy "Test hides one case" on public.enforcement_cases as restrictive '
            f"for select to enforcement_operator using (id <> '{cid}')"
        )
        act_as(db, "enforcement_operator", OPERATOR_SUB)
        assert one(db, "select count(*) from public.enforcement_cases where id = %s", (cid,)) == 0
        assert [visible(t, cid) for t in children] == [0] * len(children)
        assert all(visible(t, other.case_id) > 0 for t in children)
        assert (
            one(db, "select count(*) from public.v_enforcement_timeline where case_id = %s", (cid,))
            == 0
        )


def my_functions(db: Conn) -> list[tuple[str, bool, list[str] | None, Any, str | None]]:
    return db.execute(
        """
        select p.oid::regprocedure::text, p.prosecdef, p.proconfig, p.proacl,
               obj_description(p.oid, 'pg_proc')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'enforcement_private'
           or (n.nspname = 'public' and p.proname = any(%s))
        order by 1
        """,
        (list(ALL_RPCS),),
    ).fetchall()


def test_every_function_pins_search_path_is_commented_and_not_public(db: Conn) -> None:
    functions = my_functions(db)
    assert len(functions) >= len(ALL_RPCS) + 15
    for signature, _definer, config, acl, comment in functions:
        assert config is not None, signature
        assert 'search_path=""' in config, signature
        assert comment, signature
        assert acl is not None, f"{signature} still has the default (PUBLIC) EXECUTE"
        assert not one(
            db,
            "select exists (select 1 from aclexplode(%s::aclitem[]) a "
            "where a.grantee = 0 and a.privilege_type = 'EXECUTE')",
            (acl,),
        ), signature
    definers = {sig for sig, definer, *_ in functions if definer}
    assert {f"{n}(jsonb)" for n in ENFORCEMENT_RPCS} <= definers
    assert "refresh_enforcement_metrics()" in definers


def test_private_helpers_are_out_of_reach_of_api_roles(db: Conn) -> None:
    for role in ROLES:
        assert not one(
            db, "select has_schema_privilege(%s, 'enforcement_private', 'usage')", (role,)
        )
    helpers = [sig for sig, *_ in my_functions(db) if sig.startswith("enforcement_private.")]
    for role in ROLES:
        for sig in helpers:
            assert not one(db, "select has_function_privilege(%s, %s, 'execute')", (role, sig)), (
                role,
                sig,
            )


def test_policies_are_sentences_and_only_let_operators_read(db: Conn) -> None:
    policies = db.execute(
        """
        select schemaname || '.' || tablename, policyname, cmd, roles::text[]
        from pg_policies
        where (schemaname, tablename) in (
            ('public', 'enforcement_cases'), ('public', 'enforcement_events'),
            ('public', 'enforcement_history'), ('public', 'enforcement_actions'),
            ('public', 'enforcement_documents'), ('public', 'plaintiff_tasks'),
            ('public', 'judgments'), ('public', 'plaintiffs'), ('judgments', 'cases'),
            ('public', 'enforcement_event_kind_lookup')
        )
        """
    ).fetchall()
    mine = [p for p in policies if "enforcement_operator" in p[3] or p[0].endswith("kind_lookup")]
    assert len(mine) >= 10
    for table, name, cmd, _roles in mine:
        assert name[0].isupper(), (table, name)
        assert " " in name, (table, name)
        assert cmd == "SELECT", (table, name)
    documents = one(
        db,
        "select qual from pg_policies where tablename = 'enforcement_documents' "
        "and 'enforcement_operator' = any(roles)",
    )
    assert "enforcement_cases" in documents
    assert "EXISTS" in documents


def test_rls_is_on_for_the_event_kind_lookup(db: Conn) -> None:
    assert one(
        db,
        "select relrowsecurity from pg_class "
        "where oid = 'public.enforcement_event_kind_lookup'::regclass",
    )
    for role in ROLES:
        assert one(
            db,
            "select has_table_privilege(%s, 'public.enforcement_event_kind_lookup', 'select')",
            (role,),
        )
