"""Tenants, users and memberships for tests, and signing in as Supabase Auth does it: the
role ``authenticated``, the claims Auth issues, and the claims the access token hook adds."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class User:
    id: str
    email: str


def make_tenant(conn: Conn, slug: str, name: str | None = None) -> str:
    """A new tenant; its id."""
    row = conn.execute(
        "insert into public.tenants (slug, name) values (%s, %s) returning id::text",
        (slug, name or slug.title()),
    ).fetchone()
    assert row is not None
    return str(row[0])


def make_user(conn: Conn, email: str) -> User:
    """A user in auth.users (Supabase Auth's table, or its stand-in)."""
    user = User(str(uuid.uuid4()), email)
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user.id, user.email))
    return user


def add_member(conn: Conn, tenant_id: str, user: User, role: str) -> None:
    conn.execute(
        "insert into public.tenant_members (tenant_id, user_id, role) values (%s, %s, %s)",
        (tenant_id, user.id, role),
    )


def member(conn: Conn, tenant_id: str, role: str, email: str | None = None) -> User:
    """A new user who is a ``role`` of ``tenant_id``."""
    user = make_user(conn, email or f"{role}-{uuid.uuid4().hex[:8]}@example.test")
    add_member(conn, tenant_id, user, role)
    return user


def hook(conn: Conn, user_id: str, claims: dict[str, Any]) -> dict[str, Any]:
    """What the custom access token hook returns for this user and these claims, called as
    Supabase Auth calls it (as supabase_auth_admin), in a savepoint."""
    with conn.transaction():
        conn.execute("set local role supabase_auth_admin")
        row = conn.execute(
            "select public.custom_access_token_hook(%s)",
            (Jsonb({"user_id": user_id, "claims": claims, "authentication_method": "password"}),),
        ).fetchone()
        conn.execute("reset role")
    assert row is not None
    return dict(row[0])


def issued_claims(user: User) -> dict[str, Any]:
    """The claims Supabase Auth issues a signed-in user, before the hook."""
    return {
        "aud": "authenticated",
        "exp": 4102444800,
        "iat": 1764720000,
        "iss": "https://project.supabase.co/auth/v1",
        "sub": user.id,
        "email": user.email,
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": 1764720000}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
    }


def sign_in(conn: Conn, user: User) -> None:
    """Act, for the rest of the transaction, as PostgREST does for this user's token: role
    authenticated and the issued claims with the hook's added."""
    claims = hook(conn, user.id, issued_claims(user))["claims"]
    conn.execute("set local role authenticated")
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
