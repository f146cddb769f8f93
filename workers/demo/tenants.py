"""The demo's two tenants, their operators, and what each operator sees.

The book is split between the default tenant and a second one (``north``), each part
imported with its tenant, so the same creditor can be a plaintiff of both (one per
tenant). Each tenant gets one operator: a user in ``auth.users`` (no password: it
cannot sign in, it stands for one) and an ``operator`` row in ``public.tenant_members``.
After the run, :func:`isolation` reads the cases as each operator would through
PostgREST — role ``authenticated`` and ``request.jwt.claims`` with the user's ``sub`` —
and counts how many of its own tenant's cases it sees and how many of the others'
(none, when row-level security works).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import psycopg

from workers.ops import tenants as ops

# (slug, name when the demo creates it); the first is the default tenant.
TENANTS: tuple[tuple[str, str], ...] = (
    ("default", "Default tenant"),
    ("north", "North Collections (demo)"),
)
# Stable operator ids, so a second run finds the same users.
_OPERATOR_NAMESPACE = uuid.UUID("5d1f0c2a-8e47-4c35-9a61-1f0d6c2b7e90")

FIND_USER_BY_EMAIL = "select id from auth.users where lower(email) = lower(%s) order by id limit 1"
CREATE_USER = "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing"
ACT_AS_AUTHENTICATED = "set local role authenticated"
SET_CLAIMS = "select set_config('request.jwt.claims', %s, true)"
CASES_SEEN = """
select count(*) filter (where id = any(%(own)s)),
       count(*) filter (where id = any(%(others)s))
  from public.enforcement_cases
"""
OVERVIEW_OPEN = "select coalesce(sum(case_count), 0) from public.v_enforcement_overview"

T = TypeVar("T")


@dataclass(frozen=True)
class DemoTenant:
    """A tenant of the demo and its operator."""

    slug: str
    id: UUID
    operator_id: UUID
    operator_email: str


@dataclass(frozen=True)
class TenantView:
    """What one tenant's operator saw, signed in: its book cases, the others', and the open
    cases ``v_enforcement_overview`` counts (``None``: the view is not readable by
    ``authenticated`` in this database)."""

    slug: str
    operator_email: str
    own_seen: int
    own_total: int
    others_seen: int
    others_total: int
    overview_open: int | None


def operator_email(slug: str) -> str:
    return f"operator@{slug}.example"


def _operator(conn: psycopg.Connection[Any], email: str) -> UUID:
    """The user with ``email``, created (id derived from the email) when missing."""
    row = conn.execute(FIND_USER_BY_EMAIL, (email,)).fetchone()
    if row is not None:
        return UUID(str(row[0]))
    user_id = uuid.uuid5(_OPERATOR_NAMESPACE, email)
    conn.execute(CREATE_USER, (user_id, email))
    return user_id


def prepare_tenants(conn: psycopg.Connection[Any]) -> list[DemoTenant]:
    """The demo's tenants (created when missing), each with an operator member."""
    prepared: list[DemoTenant] = []
    for slug, name in TENANTS:
        try:
            tenant = ops.find_tenant(conn, slug)
        except ops.UnknownTenant:
            tenant = ops.create_tenant(conn, slug, name)
        email = operator_email(slug)
        with conn.transaction():
            user_id = _operator(conn, email)
        ops.add_member(conn, tenant.id, user_id, "operator")
        prepared.append(DemoTenant(tenant.slug, tenant.id, user_id, email))
    return prepared


def split(rows: Sequence[T], parts: int) -> list[list[T]]:
    """Deal ``rows`` out to ``parts`` tenants in turn: row i goes to part i mod ``parts``."""
    return [list(rows[i::parts]) for i in range(parts)]


def _overview_open(conn: psycopg.Connection[Any]) -> int | None:
    """Open cases in ``v_enforcement_overview`` as the current caller; None if refused."""
    try:
        with conn.transaction():
            row = conn.execute(OVERVIEW_OPEN).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    assert row is not None
    return int(row[0])


def isolation(
    conn: psycopg.Connection[Any],
    tenants: Sequence[DemoTenant],
    cases: dict[str, list[UUID]],
) -> list[TenantView]:
    """For each tenant's operator, signed in: how many of its tenant's ``cases`` it sees in
    ``public.enforcement_cases``, how many of the other tenants', and the open cases
    ``v_enforcement_overview`` counts for it. Each read is a transaction rolled back.

    Raises ``psycopg.errors.InsufficientPrivilege`` when this login may not act as
    ``authenticated`` (or may, but ``authenticated`` may not read the cases).
    """
    views: list[TenantView] = []
    for tenant in tenants:
        own = cases.get(tenant.slug, [])
        others = [c for slug, ids in cases.items() if slug != tenant.slug for c in ids]
        claims = {
            "role": "authenticated",
            "aud": "authenticated",
            "sub": str(tenant.operator_id),
            "email": tenant.operator_email,
        }
        with conn.transaction(force_rollback=True):
            conn.execute(ACT_AS_AUTHENTICATED)
            conn.execute(SET_CLAIMS, (json.dumps(claims),))
            seen = conn.execute(CASES_SEEN, {"own": own, "others": others}).fetchone()
            overview_open = _overview_open(conn)
        assert seen is not None
        views.append(
            TenantView(
                slug=tenant.slug,
                operator_email=tenant.operator_email,
                own_seen=int(seen[0]),
                own_total=len(own),
                others_seen=int(seen[1]),
                others_total=len(others),
                overview_open=overview_open,
            )
        )
    return views
