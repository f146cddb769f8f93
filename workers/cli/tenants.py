"""``dragonfly tenants list|create`` and ``dragonfly members add|remove|list``.

Thin: every operation is a function of :mod:`workers.ops.tenants`, which calls the
database's ``tenancy`` functions. docs/security.md, "Tenants and signed-in operators".
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from uuid import UUID

import psycopg

from workers.cli.argtypes import email_address, tenant_ref, tenant_slug, uuid
from workers.cli.common import CommandError, open_connection, print_table
from workers.ops import tenants as ops
from workers.ops.tenants import ROLES, Tenant, TenantAdminError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tenants", help="the tenants: list, create")
    commands = p.add_subparsers(dest="tenants_command", required=True)

    p = commands.add_parser("list", help="every tenant with its id, name, member and case counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_tenants_list)

    p = commands.add_parser(
        "create",
        help="create a tenant",
        description="Create a tenant. Its cases come from imports that name it"
        " (dragonfly import simplicity FILE --tenant SLUG); its people from"
        " dragonfly members add.",
    )
    p.add_argument("slug", type=tenant_slug, metavar="SLUG", help="lowercase letters, digits, -")
    p.add_argument("--name", help="the tenant's name (default: the slug)")
    p.set_defaults(func=cmd_tenants_create)

    p = subparsers.add_parser("members", help="a tenant's members: add, remove, list")
    commands = p.add_subparsers(dest="members_command", required=True)

    p = commands.add_parser(
        "add",
        help="make a user a member of a tenant, or change their role",
        description="Make a user of auth.users a member of the tenant with the role: viewer"
        " reads, operator also changes cases and queues jobs, admin also manages members."
        " An existing member gets the new role. Takes effect on their next request.",
    )
    _tenant_and_user(p)
    p.add_argument("--role", required=True, choices=ROLES, help="admin, operator or viewer")
    p.set_defaults(func=cmd_members_add)

    p = commands.add_parser(
        "remove",
        help="remove a user from a tenant",
        description="Remove a user from the tenant. They lose access on their next request,"
        " whatever their token still says.",
    )
    _tenant_and_user(p)
    p.set_defaults(func=cmd_members_remove)

    p = commands.add_parser("list", help="a tenant's members: user id, email, role")
    p.add_argument("--tenant", required=True, type=tenant_ref, metavar="T", help="slug or id")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_members_list)


def _tenant_and_user(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", required=True, type=tenant_ref, metavar="T", help="slug or id")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", type=uuid, metavar="UUID", help="the user's id (auth.users)")
    who.add_argument("--email", type=email_address, metavar="E", help="the user's email")


def _failed(exc: TenantAdminError) -> CommandError:
    return CommandError(str(exc), exit_code=2 if exc.bad_input else 1)


def _tenant(conn: psycopg.Connection[Any], ref: str) -> Tenant:
    try:
        return ops.find_tenant(conn, ref)
    except TenantAdminError as exc:
        raise _failed(exc) from None


def _user(conn: psycopg.Connection[Any], args: argparse.Namespace) -> tuple[UUID, str]:
    """The user named by --user-id or --email, and how to show them."""
    if args.user_id is not None:
        return args.user_id, str(args.user_id)
    try:
        return ops.find_user(conn, args.email), args.email
    except TenantAdminError as exc:
        raise _failed(exc) from None


def cmd_tenants_list(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        try:
            tenants = ops.list_tenants(conn)
        except TenantAdminError as exc:
            raise _failed(exc) from None
    if args.json:
        print(json.dumps([t.as_dict() for t in tenants], indent=2))
        return 0
    print_table(
        ["SLUG", "ID", "NAME", "MEMBERS", "CASES", "CREATED"],
        [
            [
                t.slug,
                str(t.id),
                t.name,
                str(t.members),
                str(t.cases),
                t.created_at.strftime("%Y-%m-%d"),
            ]
            for t in tenants
        ],
    )
    return 0


def cmd_tenants_create(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        try:
            tenant = ops.create_tenant(conn, args.slug, args.name)
        except TenantAdminError as exc:
            raise _failed(exc) from None
    print(f"created tenant {tenant.slug} ({tenant.name}): {tenant.id}")
    return 0


def cmd_members_add(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        tenant = _tenant(conn, args.tenant)
        user_id, shown = _user(conn, args)
        try:
            before = ops.add_member(conn, tenant.id, user_id, args.role)
        except TenantAdminError as exc:
            raise _failed(exc) from None
    if before is None:
        print(f"added {shown} to tenant {tenant.slug} as {args.role}")
    elif before == args.role:
        print(f"{shown} is already {args.role} of tenant {tenant.slug}; nothing changed")
    else:
        print(f"{shown} is now {args.role} of tenant {tenant.slug} (was {before})")
    return 0


def cmd_members_remove(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        tenant = _tenant(conn, args.tenant)
        user_id, shown = _user(conn, args)
        try:
            removed = ops.remove_member(conn, tenant.id, user_id)
        except TenantAdminError as exc:
            raise _failed(exc) from None
    if removed is None:
        raise CommandError(f"{shown} is not a member of tenant {tenant.slug}; nothing removed")
    print(f"removed {shown} ({removed}) from tenant {tenant.slug}")
    return 0


def cmd_members_list(args: argparse.Namespace) -> int:
    with open_connection() as conn:
        tenant = _tenant(conn, args.tenant)
        try:
            members = ops.list_members(conn, tenant.id)
        except TenantAdminError as exc:
            raise _failed(exc) from None
    if args.json:
        print(json.dumps([m.as_dict() for m in members], indent=2))
        return 0
    if not members:
        print(f"tenant {tenant.slug} has no members")
        return 0
    print_table(
        ["USER_ID", "EMAIL", "ROLE", "SINCE"],
        [
            [str(m.user_id), m.email or "-", m.role, m.created_at.strftime("%Y-%m-%d")]
            for m in members
        ],
    )
    return 0
