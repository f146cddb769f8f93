"""The tenant foundation: the access token hook, who reaches which tenants
(tenancy.caller_tenants), the acting-tenant narrowing, rows inheriting their tenant, and
row-level security deciding by membership on every request."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.security.tenants import (
    User,
    add_member,
    hook,
    issued_claims,
    make_tenant,
    make_user,
    member,
    sign_in,
)
from tests.sql.enforcement_seed import (
    DEFAULT_TENANT,
    act_as,
    one,
    seed,
    seed_judgment,
    seed_plaintiff,
)

Conn = psycopg.Connection[Any]


@pytest.fixture
def two(db: Conn) -> dict[str, str]:
    """Tenants a and b."""
    return {"a": make_tenant(db, "a"), "b": make_tenant(db, "b")}


def in_tenant(db: Conn, tenant_id: str) -> str:
    """A plaintiff of ``tenant_id`` with a judgment, court case and open case; the case id."""
    return str(seed(db, tenant=tenant_id).case_id)


def tenants_of(db: Conn, need: str) -> set[str]:
    return set(one(db, "select tenancy.caller_tenants(%s)::text[]", (need,)))


# ---------------------------------------------------------------------------------------
# The hook


def test_the_hook_gives_a_member_its_role_and_keeps_every_claim(
    db: Conn, two: dict[str, str]
) -> None:
    user = member(db, two["a"], "operator")
    claims = issued_claims(user)
    out = hook(db, user.id, claims)
    assert out["user_id"] == user.id
    assert out["authentication_method"] == "password"
    assert out["claims"] == claims | {"tenant_roles": {two["a"]: "operator"}}


def test_the_hook_gives_a_non_member_no_tenants(db: Conn) -> None:
    user = make_user(db, "nobody@example.test")
    assert hook(db, user.id, issued_claims(user))["claims"]["tenant_roles"] == {}


def test_the_hook_lists_every_tenant_of_a_user_with_several(db: Conn, two: dict[str, str]) -> None:
    user = member(db, two["a"], "viewer")
    add_member(db, two["b"], user, "admin")
    add_member(db, DEFAULT_TENANT, user, "operator")
    assert hook(db, user.id, issued_claims(user))["claims"]["tenant_roles"] == {
        two["a"]: "viewer",
        two["b"]: "admin",
        DEFAULT_TENANT: "operator",
    }


@pytest.mark.parametrize("user_id", ["not-a-uuid", "", None])
def test_the_hook_answers_a_malformed_user_id_with_no_tenants(db: Conn, user_id: Any) -> None:
    assert hook(db, user_id, {"role": "authenticated"})["claims"] == {
        "role": "authenticated",
        "tenant_roles": {},
    }


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role", "enforcement_operator"])
def test_only_supabase_auth_admin_may_run_the_hook(db: Conn, role: str) -> None:
    with db.transaction(force_rollback=True):
        db.execute(f"set local role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute("""select public.custom_access_token_hook('{"claims": {}}')""")


# ---------------------------------------------------------------------------------------
# Who reaches which tenants


def test_members_reach_their_tenants_by_role(db: Conn, two: dict[str, str]) -> None:
    expected = {
        "viewer": ({two["a"]}, set(), set()),
        "operator": ({two["a"]}, {two["a"]}, set()),
        "admin": ({two["a"]}, {two["a"]}, {two["a"]}),
    }
    for role, (read, write, admin) in expected.items():
        user = member(db, two["a"], role)
        with db.transaction(force_rollback=True):
            sign_in(db, user)
            assert (tenants_of(db, "read"), tenants_of(db, "write"), tenants_of(db, "admin")) == (
                read,
                write,
                admin,
            ), role


def test_a_signed_in_non_member_reaches_no_tenant(db: Conn, two: dict[str, str]) -> None:
    with db.transaction(force_rollback=True):
        sign_in(db, make_user(db, "stranger@example.test"))
        assert tenants_of(db, "read") == set()


@pytest.mark.parametrize("role", ["enforcement_operator", "service_role"])
def test_service_tooling_reaches_every_tenant(db: Conn, two: dict[str, str], role: str) -> None:
    with db.transaction(force_rollback=True):
        act_as(db, role)
        assert tenants_of(db, "write") == {two["a"], two["b"], DEFAULT_TENANT}


def test_anon_may_not_ask(db: Conn) -> None:
    with db.transaction(force_rollback=True):
        act_as(db, "anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
            db.execute("select tenancy.caller_tenants('read')")


def test_a_jwt_for_another_role_is_no_membership(db: Conn, two: dict[str, str]) -> None:
    user = member(db, two["a"], "admin")
    with db.transaction(force_rollback=True):
        # The enforcement_operator role reaches every tenant as service tooling; the sub of a
        # member does not narrow or widen that, and anon never reaches the member's tenant.
        act_as(db, "enforcement_operator", user.id)
        assert tenants_of(db, "read") == {two["a"], two["b"], DEFAULT_TENANT}


def test_the_acting_tenant_narrows_and_never_widens(db: Conn, two: dict[str, str]) -> None:
    user = member(db, two["a"], "operator")
    with db.transaction(force_rollback=True):
        act_as(db, "service_role")
        db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (two["b"],))
        assert tenants_of(db, "write") == {two["b"]}
    with db.transaction(force_rollback=True):
        sign_in(db, user)
        db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (two["b"],))
        assert tenants_of(db, "read") == set()
    with db.transaction(force_rollback=True):
        sign_in(db, user)
        db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (two["a"],))
        assert tenants_of(db, "write") == {two["a"]}


@pytest.mark.parametrize("value", ["b", "not a uuid", "00000000-0000-4000-8000-00000000000"])
def test_an_acting_tenant_that_is_no_uuid_narrows_to_nothing(db: Conn, value: str) -> None:
    with db.transaction(force_rollback=True):
        act_as(db, "service_role")
        db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (value,))
        assert tenants_of(db, "read") == set()


def test_a_bad_need_is_refused(db: Conn) -> None:
    with (
        pytest.raises(psycopg.errors.InvalidParameterValue, match="read, write or admin"),
        db.transaction(),
    ):
        db.execute("select tenancy.caller_tenants('delete')")


def make_trust_probe(db: Conn) -> None:
    """public.probe_trust(): dragonfly.caller_trust_level() through a SECURITY DEFINER
    wrapper, as the RPCs call it; made in the test's rolled-back transaction."""
    db.execute(
        "create function public.probe_trust() returns text language sql security definer"
        " set search_path = '' as $$ select dragonfly.caller_trust_level() $$"
    )
    db.execute("grant execute on function public.probe_trust() to authenticated")


def test_a_signed_in_operator_is_an_operator_and_a_viewer_is_not(
    db: Conn, two: dict[str, str]
) -> None:
    make_trust_probe(db)
    levels = {}
    for role in ("viewer", "operator", "admin"):
        user = member(db, two["a"], role)
        with db.transaction(force_rollback=True):
            sign_in(db, user)
            levels[role] = one(db, "select public.probe_trust()")
    with db.transaction(force_rollback=True):
        sign_in(db, make_user(db, "stranger@example.test"))
        levels["non-member"] = one(db, "select public.probe_trust()")
    assert levels == {
        "viewer": "public",
        "operator": "operator",
        "admin": "operator",
        "non-member": "public",
    }


# ---------------------------------------------------------------------------------------
# Rows carry their tenant


def test_children_inherit_their_parents_tenant(db: Conn, two: dict[str, str]) -> None:
    case_id = in_tenant(db, two["a"])
    assert (
        one(
            db,
            "select array[p.tenant_id, j.tenant_id, cc.tenant_id, c.tenant_id]::text[]"
            " from public.enforcement_cases c join public.judgments j on j.id = c.judgment_id"
            " join judgments.cases cc on cc.judgment_id = j.id"
            " join public.plaintiffs p on p.id = j.plaintiff_id"
            " where c.id = %s",
            (case_id,),
        )
        == [two["a"]] * 4
    )


def test_a_row_given_another_tenant_than_its_parents_is_refused(
    db: Conn, two: dict[str, str]
) -> None:
    pid = seed_plaintiff(db)
    with pytest.raises(psycopg.errors.CheckViolation, match="parent's tenant"), db.transaction():
        db.execute(
            "insert into public.judgments"
            " (plaintiff_id, debtor_name, judgment_amount, balance_due, tenant_id)"
            " values (%s, 'D', 1, 1, %s)",
            (pid, two["b"]),
        )


def test_nothing_moves_between_tenants(db: Conn, two: dict[str, str]) -> None:
    case_id = in_tenant(db, two["a"])
    other = seed_plaintiff(db, tenant=two["b"])
    jid = one(
        db, "select judgment_id::text from public.enforcement_cases where id = %s", (case_id,)
    )
    statements = [
        ("update public.judgments set plaintiff_id = %s where id = %s", (other, jid)),
        ("update public.judgments set tenant_id = %s where id = %s", (two["b"], jid)),
        ("update public.enforcement_cases set tenant_id = %s where id = %s", (two["b"], case_id)),
        ("update judgments.cases set tenant_id = %s where judgment_id = %s", (two["b"], jid)),
    ]
    for statement, params in statements:
        with pytest.raises(psycopg.errors.CheckViolation, match="another tenant"), db.transaction():
            db.execute(statement, params)
    pid = one(db, "select plaintiff_id::text from public.judgments where id = %s", (jid,))
    with pytest.raises(psycopg.errors.CheckViolation, match="another tenant"), db.transaction():
        db.execute(
            "update public.plaintiffs set tenant_id = %s where id = %s", (DEFAULT_TENANT, pid)
        )


def test_rows_inherit_in_replica_mode_too(db: Conn, two: dict[str, str]) -> None:
    pid = seed_plaintiff(db, tenant=two["a"])
    db.execute("set local session_replication_role = replica")
    jid = seed_judgment(db, pid)
    db.execute("set local session_replication_role = origin")
    assert one(db, "select tenant_id::text from public.judgments where id = %s", (jid,)) == two["a"]


def test_rows_nobody_places_land_in_the_default_tenant(db: Conn) -> None:
    seeded = seed(db)
    assert one(
        db, "select tenant_id::text from public.enforcement_cases where id = %s", (seeded.case_id,)
    ) == (DEFAULT_TENANT)


# ---------------------------------------------------------------------------------------
# Row-level security decides by membership, on every request

CASE_TABLES = {
    "public.plaintiffs": "select count(*) from public.plaintiffs where id = any(%s)",
    "public.judgments": "select count(*) from public.judgments where plaintiff_id = any(%s)",
    "judgments.cases": "select count(*) from judgments.cases cc join public.judgments j"
    " on j.id = cc.judgment_id where j.plaintiff_id = any(%s)",
    "public.enforcement_cases": "select count(*) from public.enforcement_cases"
    " where plaintiff_id = any(%s)",
    "public.enforcement_events": "select count(*) from public.enforcement_events e join"
    " public.enforcement_cases c on c.id = e.enforcement_case_id where c.plaintiff_id = any(%s)",
    "public.enforcement_history": "select count(*) from public.enforcement_history h join"
    " public.enforcement_cases c on c.id = h.enforcement_case_id where c.plaintiff_id = any(%s)",
}


def visible(db: Conn, plaintiffs: list[str]) -> dict[str, int]:
    return {table: one(db, query, (plaintiffs,)) for table, query in CASE_TABLES.items()}


def plaintiff_of(db: Conn, case_id: str) -> str:
    return str(
        one(db, "select plaintiff_id::text from public.enforcement_cases where id = %s", (case_id,))
    )


def test_a_member_sees_its_tenants_rows_only(db: Conn, two: dict[str, str]) -> None:
    pa = plaintiff_of(db, in_tenant(db, two["a"]))
    pb = plaintiff_of(db, in_tenant(db, two["b"]))
    everything = visible(db, [pa])
    assert all(n >= 1 for n in everything.values()), everything
    viewer = member(db, two["a"], "viewer")
    with db.transaction(force_rollback=True):
        sign_in(db, viewer)
        assert visible(db, [pa]) == everything
        assert set(visible(db, [pb]).values()) == {0}
    with db.transaction(force_rollback=True):
        sign_in(db, make_user(db, "stranger@example.test"))
        assert set(visible(db, [pa, pb]).values()) == {0}


def test_a_removed_member_loses_access_before_its_token_expires(
    db: Conn, two: dict[str, str]
) -> None:
    pa = plaintiff_of(db, in_tenant(db, two["a"]))
    user = member(db, two["a"], "operator")
    claims = hook(db, user.id, issued_claims(user))["claims"]
    db.execute("delete from public.tenant_members where user_id = %s", (user.id,))
    with db.transaction(force_rollback=True):
        # The token still says operator of a; the table says nothing.
        db.execute("set local role authenticated")
        db.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        assert claims["tenant_roles"] == {two["a"]: "operator"}
        assert set(visible(db, [pa]).values()) == {0}


def test_members_see_their_own_memberships_and_admins_their_tenants(
    db: Conn, two: dict[str, str]
) -> None:
    admin = member(db, two["a"], "admin")
    viewer = member(db, two["a"], "viewer")
    other: User = member(db, two["b"], "operator")
    query = "select array_agg(user_id::text order by user_id) from public.tenant_members"
    with db.transaction(force_rollback=True):
        sign_in(db, viewer)
        assert one(db, query) == [viewer.id]
        assert one(db, "select array_agg(slug) from public.tenants") == ["a"]
    with db.transaction(force_rollback=True):
        sign_in(db, admin)
        assert one(db, query) == sorted([admin.id, viewer.id])
    with db.transaction(force_rollback=True):
        sign_in(db, other)
        assert one(db, query) == [other.id]
        assert one(db, "select array_agg(slug) from public.tenants") == ["b"]
