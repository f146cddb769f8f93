"""Calling the database the way the internet does: PostgREST's role switch, its claims, and
its way of turning a JSON body into function arguments."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tests.sql.enforcement_seed import DEFAULT_TENANT, act_as

Conn = psycopg.Connection[Any]

PUBLIC_ROLES = ("anon", "authenticated")
"""The internet: anon and a signed-in user of no tenant. They reach no tenant's rows."""
ATTACKER_SUB = "0badc0de-0000-4000-8000-000000000666"
OPERATOR_SUB = "0a0a0a0a-1111-4222-8333-444444444444"
OPERATOR_EMAIL = "ops@example.test"
VIEWER = "viewer"
"""A signed-in viewer of the default tenant: a public caller (viewers only read) who reaches
the default tenant's rows, so its jobs on them pass the door under the public policy."""
VIEWER_SUB = "5ee5ee00-0000-4000-8000-000000000777"
VIEWER_EMAIL = "viewer@example.test"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Two tenants and their members (make_tenants() writes them). A member signs in as
# Supabase's role authenticated; the database decides from their tenant_members row.
TENANT_A = "a0000000-0000-4000-8000-00000000000a"
TENANT_B = "b0000000-0000-4000-8000-00000000000b"


@dataclass(frozen=True)
class Member:
    sub: str
    email: str
    tenant: str
    role: str


MEMBERS = {
    "viewer_a": Member(
        "a0000000-0000-4000-8000-0000000000a1", "viewer.a@example.test", TENANT_A, "viewer"
    ),
    "operator_a": Member(
        "a0000000-0000-4000-8000-0000000000a2", "operator.a@example.test", TENANT_A, "operator"
    ),
    "admin_a": Member(
        "a0000000-0000-4000-8000-0000000000a3", "admin.a@example.test", TENANT_A, "admin"
    ),
    "operator_b": Member(
        "b0000000-0000-4000-8000-0000000000b2", "operator.b@example.test", TENANT_B, "operator"
    ),
}
# Fleet sessions (dragonfly_worker) narrowed to one tenant by dragonfly.acting_tenant, as a
# worker acting for a job of that tenant.
WORKERS = {"worker_a": TENANT_A, "worker_b": TENANT_B}


def make_tenants(conn: Conn) -> None:
    """Tenants A and B, the users of :data:`MEMBERS` in auth.users and their memberships
    (as the connection's own role; once per transaction or database is enough)."""
    conn.execute(
        "insert into public.tenants (id, slug, name) values (%s, 'tenant-a', 'Tenant A'),"
        " (%s, 'tenant-b', 'Tenant B') on conflict do nothing",
        (TENANT_A, TENANT_B),
    )
    for member in MEMBERS.values():
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s) on conflict do nothing",
            (member.sub, member.email),
        )
        conn.execute(
            "insert into public.tenant_members (tenant_id, user_id, role) values (%s, %s, %s)"
            " on conflict do nothing",
            (member.tenant, member.sub, member.role),
        )


def become(conn: Conn, role: str) -> None:
    """Act as ``role`` with the claims PostgREST would set for it.

    The anon key carries no ``sub``; a signed-in (authenticated) user and an operator carry
    one, and an email. The members of :data:`MEMBERS` (``viewer_a``, ``operator_a``,
    ``admin_a``, ``operator_b``) are signed-in users with the claims Supabase issues them
    (``tenant_roles`` from the access token hook); their rows must exist
    (:func:`make_tenants`). ``worker_a`` and ``worker_b`` are fleet sessions acting for one
    tenant.
    """
    if role in MEMBERS:
        member = MEMBERS[role]
        conn.execute("set local role authenticated")
        claims = {
            "role": "authenticated",
            "aud": "authenticated",
            "sub": member.sub,
            "email": member.email,
            "app_metadata": {"provider": "email"},
            "tenant_roles": {member.tenant: member.role},
        }
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    elif role in WORKERS:
        act_as(conn, "dragonfly_worker")
        conn.execute("select set_config('dragonfly.acting_tenant', %s, true)", (WORKERS[role],))
    elif role == "anon":
        conn.execute("set local role anon")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "anon", "iss": "supabase"}),),
        )
    elif role == "authenticated":
        act_as(conn, role, ATTACKER_SUB, "mallory@example.test")
    elif role == "enforcement_operator":
        act_as(conn, role, OPERATOR_SUB, OPERATOR_EMAIL)
    elif role == VIEWER:
        add_member(conn, DEFAULT_TENANT, VIEWER_SUB, "viewer", VIEWER_EMAIL)
        act_as(conn, "authenticated", VIEWER_SUB, VIEWER_EMAIL)
    else:
        act_as(conn, role)


def add_member(conn: Conn, tenant: str, user: str, role: str, email: str | None = None) -> None:
    """Make ``user`` (created in auth.users if need be) a ``role`` of ``tenant``; run as the
    test's own (superuser) role."""
    conn.execute(
        "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
        (user, email),
    )
    conn.execute(
        "insert into public.tenant_members (tenant_id, user_id, role) values (%s, %s, %s)"
        " on conflict (tenant_id, user_id) do update set role = excluded.role",
        (tenant, user, role),
    )


def become_member(conn: Conn, user: str, email: str | None = None) -> None:
    """Act as the signed-in user ``user`` (role authenticated with its sub), as PostgREST does."""
    act_as(conn, "authenticated", user, email or f"{user[:8]}@example.test")


def identity_of(role: str) -> str:
    """What an audit field must record for a caller made by :func:`become`."""
    if role in MEMBERS:
        return MEMBERS[role].email
    return {
        "anon": "anon",
        "authenticated": "mallory@example.test",
        "enforcement_operator": OPERATOR_EMAIL,
        VIEWER: VIEWER_EMAIL,
    }[role]


def postgrest_rpc(conn: Conn, name: str, body: dict[str, Any]) -> Any:
    """``POST /rpc/<name>`` with ``body``, as PostgREST runs it: the body goes through
    ``json_to_record`` with the parameters' types, so a value of the wrong type fails before
    the function runs, exactly as it would over HTTP."""
    row = conn.execute(
        "select p.proargnames[1:p.pronargs],"
        " array(select format_type(t, null) from unnest(p.proargtypes::oid[]) t)"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and p.proname = %s",
        (name,),
    ).fetchone()
    assert row is not None, name
    types = dict(zip(row[0], row[1], strict=True))
    names = [n for n in row[0] if n in body]
    query = sql.SQL("select public.{}({}) from json_to_record(%s::json) as _({})").format(
        sql.Identifier(name),
        sql.SQL(", ").join(sql.SQL("{0} := _.{0}").format(sql.Identifier(n)) for n in names),
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(types[n])) for n in names
        ),
    )
    result = conn.execute(query, (json.dumps(body),)).fetchone()
    assert result is not None
    return result[0]


def accepted(conn: Conn, role: str, call: Any) -> Any:
    """Run ``call()`` as ``role`` in a savepoint that must succeed; return its result."""
    with conn.transaction():
        become(conn, role)
        result = call()
        conn.execute("reset role")
    return result


def refusal(conn: Conn, call: Any) -> psycopg.Error:
    """Run ``call()`` in a savepoint that must fail; return the error."""
    try:
        with conn.transaction():
            call()
    except psycopg.Error as error:
        return error
    raise AssertionError("the call was accepted")


def without_ids(message: str) -> str:
    """A message with its uuids blanked, to compare answers about different rows."""
    return UUID_RE.sub("<id>", message)


def new_uuid() -> str:
    return str(uuid.uuid4())


def request_brief(url: str, role: str, case_id: str, requested_by: str | None = None) -> int:
    """``POST /rpc/request_case_copilot`` as ``role``: one transaction, as one HTTP call."""
    with psycopg.connect(url) as conn:
        become(conn, role)
        body: dict[str, Any] = {"case_id": case_id}
        if requested_by is not None:
            body["requested_by"] = requested_by
        msg_id = int(postgrest_rpc(conn, "request_case_copilot", body))
        conn.commit()
        return msg_id
