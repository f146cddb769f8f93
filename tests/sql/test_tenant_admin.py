"""The tenancy functions behind ``dragonfly tenants`` and ``dragonfly members``, through
:mod:`workers.ops.tenants`: what they do, who may call them, and that a membership
decides access on the very next statement.

In the ``db`` fixture's rolled-back transaction; the test connection is the owner
(internal), and signed-in users are played with ``act_as`` as PostgREST would.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.sql.enforcement_seed import act_as, one, seed
from workers.ops import tenants as ops

Conn = psycopg.Connection[Any]

DEFAULT = ops.DEFAULT_TENANT_ID
FUNCTIONS = (
    "tenancy.find_tenant(text)",
    "tenancy.list_tenants()",
    "tenancy.create_tenant(text, text)",
    "tenancy.find_user(text)",
    "tenancy.add_member(uuid, uuid, text)",
    "tenancy.remove_member(uuid, uuid)",
    "tenancy.list_members(uuid)",
)


@pytest.fixture
def db(db: Conn) -> Conn:
    """The rolled-back connection with its transaction open, so each ops call below is a
    savepoint inside it (on a connection with no transaction open, it commits)."""
    db.execute("select 1")
    return db


def user(conn: Conn, email: str | None = None) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
    return user_id


def signed_in(conn: Conn, user_id: uuid.UUID) -> None:
    act_as(conn, "authenticated", str(user_id), "someone@example.test")


@pytest.mark.parametrize("signature", FUNCTIONS)
def test_only_the_service_role_may_execute_them(db: Conn, signature: str) -> None:
    rights = {
        role: one(db, "select has_function_privilege(%s, %s, 'execute')", (role, signature))
        for role in ("anon", "authenticated", "enforcement_operator", "dragonfly_worker")
    }
    assert rights == dict.fromkeys(rights, False)
    assert one(db, "select has_function_privilege('service_role', %s, 'execute')", (signature,))


def test_tenants_are_created_found_and_listed(db: Conn) -> None:
    north = ops.create_tenant(db, "north", "North Collections")
    assert (north.slug, north.name) == ("north", "North Collections")
    assert ops.create_tenant(db, "south").name == "south"
    assert ops.find_tenant(db, "NORTH") == north
    assert ops.find_tenant(db, f" {north.id} ") == north
    assert ops.find_tenant(db, "default").id == DEFAULT

    seed(db)  # one enforcement case in the default tenant
    member = user(db, "ann@example.com")
    ops.add_member(db, north.id, member, "viewer")
    listed = {t.slug: (t.members, t.cases) for t in ops.list_tenants(db)}
    assert listed == {"default": (0, 1), "north": (1, 0), "south": (0, 0)}
    assert [t.slug for t in ops.list_tenants(db)] == ["default", "north", "south"]


@pytest.mark.parametrize(
    ("slug", "name", "error", "text"),
    [
        ("north", None, ops.TenantExists, "tenant 'north' already exists"),
        ("-north", None, ops.InvalidValue, "lowercase letters, digits and hyphens"),
        ("North", None, ops.InvalidValue, "got 'North'"),
        ("x" * 64, None, ops.InvalidValue, "1 to 63"),
        (str(uuid.uuid4()), None, ops.InvalidValue, "looks like a tenant id"),
        ("east", " ", ops.InvalidValue, "a name is 1 to 200 characters"),
        ("east", "n" * 201, ops.InvalidValue, "a name is 1 to 200 characters"),
    ],
)
def test_a_bad_or_taken_slug_is_refused_and_nothing_is_created(
    db: Conn, slug: str, name: str | None, error: type[Exception], text: str
) -> None:
    ops.create_tenant(db, "north")
    before = one(db, "select count(*) from public.tenants")
    with pytest.raises(error, match=text):
        ops.create_tenant(db, slug, name)
    assert one(db, "select count(*) from public.tenants") == before


@pytest.mark.parametrize("ref", ["nowhere", "00000000-0000-4000-8000-00000000beef", " "])
def test_an_unknown_tenant_is_one_error(db: Conn, ref: str) -> None:
    error = ops.InvalidValue if not ref.strip() else ops.UnknownTenant
    with pytest.raises(error):
        ops.find_tenant(db, ref)


def test_members_are_added_changed_listed_and_removed(db: Conn) -> None:
    north = ops.create_tenant(db, "north")
    ann = user(db, "Ann@Example.com")
    bob = user(db, None)
    assert ops.find_user(db, " ann@EXAMPLE.com") == ann
    assert ops.add_member(db, north.id, ann, "viewer") is None
    assert ops.add_member(db, north.id, ann, "admin") == "viewer"
    assert ops.add_member(db, north.id, ann, "admin") == "admin"
    assert ops.add_member(db, north.id, bob, "operator") is None
    assert [(m.user_id, m.email, m.role) for m in ops.list_members(db, north.id)] == [
        (ann, "Ann@Example.com", "admin"),
        (bob, None, "operator"),
    ]
    assert ops.list_members(db, DEFAULT) == []
    assert ops.remove_member(db, north.id, bob) == "operator"
    assert ops.remove_member(db, north.id, bob) is None
    assert [m.user_id for m in ops.list_members(db, north.id)] == [ann]


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda db, t: ops.find_user(db, "nobody@example.com"), ops.UnknownUser, "no user has"),
        (lambda db, t: ops.find_user(db, ""), ops.InvalidValue, "an email is required"),
        (lambda db, t: ops.find_user(db, "twin@example.com"), ops.UnknownUser, "2 users have"),
        (
            lambda db, t: ops.add_member(db, t, uuid.UUID(int=7), "viewer"),
            ops.UnknownUser,
            "user 00000000-0000-0000-0000-000000000007 does not exist",
        ),
        (
            lambda db, t: ops.add_member(db, t, user(db), "owner"),
            ops.InvalidValue,
            "role must be admin, operator or viewer (got 'owner')",
        ),
        (
            lambda db, t: ops.add_member(db, uuid.UUID(int=9), user(db), "viewer"),
            ops.UnknownTenant,
            "tenant 00000000-0000-0000-0000-000000000009 does not exist",
        ),
    ],
)
def test_member_refusals_change_nothing(
    db: Conn, call: Any, error: type[Exception], text: str
) -> None:
    north = ops.create_tenant(db, "north")
    user(db, "twin@example.com")
    user(db, "TWIN@example.com")
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        call(db, north.id)
    assert one(db, "select count(*) from public.tenant_members") == 0


def grant_to_signed_in_users(db: Conn) -> None:
    """What a deployment does to let its console's admins manage members."""
    db.execute(
        "grant execute on function tenancy.find_tenant(text), tenancy.list_tenants(),"
        " tenancy.create_tenant(text, text), tenancy.find_user(text),"
        " tenancy.add_member(uuid, uuid, text), tenancy.remove_member(uuid, uuid),"
        " tenancy.list_members(uuid) to authenticated"
    )


def test_a_signed_in_admin_manages_only_their_tenants_members(db: Conn) -> None:
    grant_to_signed_in_users(db)
    north = ops.create_tenant(db, "north")
    south = ops.create_tenant(db, "south")
    admin, operator, newcomer = user(db), user(db), user(db)
    ops.add_member(db, north.id, admin, "admin")
    ops.add_member(db, north.id, operator, "operator")
    ops.add_member(db, south.id, operator, "viewer")

    with db.transaction():
        signed_in(db, admin)
        assert ops.add_member(db, north.id, newcomer, "viewer") is None
        assert {m.user_id for m in ops.list_members(db, north.id)} == {admin, operator, newcomer}
        assert [t.slug for t in ops.list_tenants(db)] == ["north"]
        # Another tenant answers exactly like a tenant that does not exist.
        refusals = []
        for tenant in (south.id, uuid.uuid4()):
            with pytest.raises(ops.UnknownTenant) as refused:
                ops.add_member(db, tenant, newcomer, "admin")
            refusals.append(str(refused.value).replace(str(tenant), "<id>"))
        assert refusals[0] == refusals[1]
        with pytest.raises(ops.UnknownTenant):
            ops.find_tenant(db, "south")
        # Tenants and the user directory are the service tooling's.
        with pytest.raises(ops.NotAllowed):
            ops.create_tenant(db, "east")
        with pytest.raises(ops.NotAllowed):
            ops.find_user(db, "x@example.com")
        db.execute("reset role")

    with db.transaction():
        signed_in(db, operator)
        # An operator (and a viewer) may read their tenant but not manage its members.
        for tenant in (north.id, south.id):
            with pytest.raises(ops.NotAllowed, match="only an admin of tenant"):
                ops.remove_member(db, tenant, newcomer)
            with pytest.raises(ops.NotAllowed):
                ops.list_members(db, tenant)
        db.execute("reset role")
    assert {m.user_id for m in ops.list_members(db, north.id)} == {admin, operator, newcomer}


def test_a_removed_member_loses_access_on_the_next_statement(db: Conn) -> None:
    north = ops.create_tenant(db, "north")
    plaintiff = one(
        db,
        "insert into public.plaintiffs (tenant_id, name) values (%s, 'N') returning id",
        (north.id,),
    )
    judgment = one(
        db,
        "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due)"
        " values (%s, 'D', 10, 10) returning id",
        (plaintiff,),
    )
    db.execute(
        "insert into public.enforcement_cases (judgment_id, plaintiff_id, current_balance,"
        " created_by) values (%s, %s, 10, 'test')",
        (judgment, plaintiff),
    )
    member = user(db)
    ops.add_member(db, north.id, member, "operator")
    visible = "select count(*) from public.enforcement_cases"
    with db.transaction():
        signed_in(db, member)
        assert one(db, visible) == 1
        db.execute("reset role")
        ops.remove_member(db, north.id, member)
        signed_in(db, member)  # the same token, still claiming the membership
        assert one(db, visible) == 0
        db.execute("reset role")


def test_the_acting_tenant_narrows_the_service_tooling(db: Conn) -> None:
    north = ops.create_tenant(db, "north")
    db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (str(north.id),))
    assert [t.slug for t in ops.list_tenants(db)] == ["north"]
    with pytest.raises(ops.UnknownTenant):
        ops.find_tenant(db, "default")
    with pytest.raises(ops.UnknownTenant):
        ops.add_member(db, DEFAULT, user(db), "viewer")
