"""Tenants and their members: list and create tenants, add, remove and list members.

Each function takes a caller-supplied connection and calls one function of the
``tenancy`` schema (sql/migrations/20261203130200_tenant_admin.sql), which decides who
may do it: tenants are created by internal callers only (the fleet's service tooling,
the owner); members are managed by whoever may administer the tenant. The database's
refusals come back as the typed exceptions below, with messages a person can act on.
Each call is a transaction of its own, or a savepoint of the caller's open transaction.

A membership takes effect on the member's next request: the policies read
``public.tenant_members`` on every request, the token's ``tenant_roles`` claim is only
what the console shows (docs/security.md, "Tenants and signed-in operators").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

ROLES: tuple[str, ...] = ("admin", "operator", "viewer")
DEFAULT_TENANT_ID = UUID("00000000-0000-4000-8000-000000000001")
# The database's rule for a slug (public.tenants' check constraint).
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
UUID_SHAPE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

FIND_TENANT = "select id, slug, name, created_at from tenancy.find_tenant(%(ref)s)"
LIST_TENANTS = "select id, slug, name, created_at, members, cases from tenancy.list_tenants()"
CREATE_TENANT = "select id, slug, name, created_at from tenancy.create_tenant(%(slug)s, %(name)s)"
FIND_USER = "select tenancy.find_user(%(email)s)"
ADD_MEMBER = "select tenancy.add_member(%(tenant)s, %(user)s, %(role)s)"
REMOVE_MEMBER = "select tenancy.remove_member(%(tenant)s, %(user)s)"
LIST_MEMBERS = "select user_id, email, role, created_at from tenancy.list_members(%(tenant)s)"


class TenantAdminError(Exception):
    """The database refused a tenant or membership operation; the message is one line.

    ``bad_input``: the caller named something that does not exist or is malformed
    (the CLI exits 2); otherwise the operation was not allowed or failed (exit 1).
    """

    bad_input = True


class UnknownTenant(TenantAdminError):
    """No tenant with that slug or id (or one the caller cannot see)."""


class UnknownUser(TenantAdminError):
    """No user in auth.users with that id or email (or more than one with that email)."""


class TenantExists(TenantAdminError):
    """A tenant with that slug exists already."""


class InvalidValue(TenantAdminError):
    """A slug, name or role the database does not accept."""


class NotAllowed(TenantAdminError):
    """The caller may not do this (not an admin of the tenant, not internal)."""

    bad_input = False


@dataclass(frozen=True, slots=True)
class Tenant:
    """A row of ``public.tenants``; ``members`` and ``cases`` when listed."""

    id: UUID
    slug: str
    name: str
    created_at: datetime
    members: int | None = None
    cases: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        row = asdict(self)
        row["id"] = str(self.id)
        row["created_at"] = self.created_at.isoformat()
        return row


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a tenant: the user (its email from auth.users, when it has one) and role."""

    user_id: UUID
    email: str | None
    role: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "user_id": str(self.user_id),
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


def _message(exc: psycopg.Error) -> str:
    """The database's message without its ``function:`` prefix, on one line."""
    text = (exc.diag.message_primary if exc.diag else None) or str(exc)
    text = " ".join(text.split())
    head, sep, rest = text.partition(": ")
    return rest if sep and re.fullmatch(r"[a-z_]+", head) else text


def _refused(exc: psycopg.Error, not_found: type[TenantAdminError]) -> TenantAdminError:
    """The typed exception for a refusal of the tenancy functions (by SQLSTATE)."""
    message = _message(exc)
    match exc.sqlstate:
        case "P0002" if message.startswith("tenant "):
            return UnknownTenant(message)
        case "P0002" | "21000":
            return not_found(message)
        case "23505":
            return TenantExists(message)
        case "22023":
            return InvalidValue(message)
        case "42501":
            return NotAllowed(message)
    error = TenantAdminError(message)
    error.bad_input = False
    return error


def _call(
    conn: psycopg.Connection[Any],
    query: str,
    params: dict[str, Any],
    not_found: type[TenantAdminError] = UnknownTenant,
) -> list[tuple[Any, ...]]:
    try:
        with conn.transaction():
            return conn.execute(query, params).fetchall()
    except psycopg.errors.UndefinedFunction:
        raise TenantAdminError(
            "the tenancy functions are missing from this database; run `dragonfly db migrate`"
        ) from None
    except psycopg.Error as exc:
        if exc.sqlstate in ("40001", "40P01"):
            raise
        raise _refused(exc, not_found) from None


def find_tenant(conn: psycopg.Connection[Any], ref: str) -> Tenant:
    """The tenant named by ``ref``, a slug (any case) or an id; :class:`UnknownTenant` if none."""
    (row,) = _call(conn, FIND_TENANT, {"ref": ref})
    return Tenant(*row)


def list_tenants(conn: psycopg.Connection[Any]) -> list[Tenant]:
    """Every tenant the connection may read, by slug, with its member and case counts."""
    return [Tenant(*row) for row in _call(conn, LIST_TENANTS, {})]


def create_tenant(conn: psycopg.Connection[Any], slug: str, name: str | None = None) -> Tenant:
    """Create tenant ``slug`` (named ``name``, default the slug); :class:`TenantExists` if taken."""
    (row,) = _call(conn, CREATE_TENANT, {"slug": slug, "name": name})
    return Tenant(*row)


def find_user(conn: psycopg.Connection[Any], email: str) -> UUID:
    """The id of the auth.users row with ``email`` (case-insensitive); :class:`UnknownUser`."""
    (row,) = _call(conn, FIND_USER, {"email": email}, not_found=UnknownUser)
    return UUID(str(row[0]))


def add_member(
    conn: psycopg.Connection[Any], tenant_id: UUID, user_id: UUID, role: str
) -> str | None:
    """Make ``user_id`` a member of ``tenant_id`` with ``role``, or change their role.

    Returns the role they had before (``None``: newly added). :class:`UnknownUser` when
    the user does not exist, :class:`InvalidValue` for a role not in :data:`ROLES`.
    """
    (row,) = _call(
        conn,
        ADD_MEMBER,
        {"tenant": tenant_id, "user": user_id, "role": role},
        not_found=UnknownUser,
    )
    return None if row[0] is None else str(row[0])


def remove_member(conn: psycopg.Connection[Any], tenant_id: UUID, user_id: UUID) -> str | None:
    """Remove ``user_id`` from ``tenant_id``; the role they had, ``None`` if not a member."""
    (row,) = _call(conn, REMOVE_MEMBER, {"tenant": tenant_id, "user": user_id})
    return None if row[0] is None else str(row[0])


def list_members(conn: psycopg.Connection[Any], tenant_id: UUID) -> list[Member]:
    """The members of ``tenant_id``, admins first, then by email."""
    return [Member(*row) for row in _call(conn, LIST_MEMBERS, {"tenant": tenant_id})]
