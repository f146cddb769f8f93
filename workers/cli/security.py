"""``dragonfly security report [--role ROLE ...] [--kind KIND ...] [--json]``.

Prints the public surface as the database grants it (workers/ops/security.py): for each API
and fleet role the functions it may execute and the tables and views of ``public`` it may
read or write; then, per job kind, who may enqueue it with which fields and limits, and the
rate limits. docs/security.md, "``dragonfly security report``".
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import psycopg

from workers.cli.argtypes import kind_name
from workers.cli.common import CommandError, open_connection, print_table
from workers.ops.security import (
    ROLES,
    KindRules,
    LevelRules,
    PolicyMissing,
    RoleSurface,
    security_report,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("security", help="the public surface and the job-kind policy")
    commands = p.add_subparsers(dest="security_command", required=True)
    p = commands.add_parser(
        "report",
        help="what each role may call and touch; who may enqueue what",
        description="For anon, authenticated, service_role, enforcement_operator and"
        " dragonfly_worker: the functions each may execute (in every schema it may use) and"
        " the tables and views of public it may SELECT, INSERT, UPDATE or DELETE. Then per"
        " job kind: the levels that may enqueue it, the fields each may set, size, depth and"
        " delay limits, and the rate limits. Read from the database as it is.",
    )
    p.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        metavar="ROLE",
        help=f"only this role (repeatable): {', '.join(ROLES)}",
    )
    p.add_argument(
        "--kind",
        action="append",
        type=kind_name,
        metavar="KIND",
        help="only this kind (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_report)


def _fields(level: LevelRules, kind: KindRules) -> str:
    if not level.may_enqueue:
        return "(refused: the kind has no payload shape)"
    if level.fields is not None:
        return ", ".join(level.fields)
    return "* (every field)" if kind.shape is not None else "* (any object)"


def _limit(value: int | None, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def _print_surface(roles: tuple[RoleSurface, ...]) -> None:
    print("Functions each role may execute (every schema it has USAGE on)")
    rows = []
    for surface in roles:
        if not surface.exists:
            rows.append([surface.role, "", "(no such role in this database)"])
        elif not surface.functions:
            rows.append([surface.role, "", "(none)"])
        for grant in surface.functions:
            rows.append([surface.role, "owner" if grant.definer else "caller", grant.signature])
    print_table(["ROLE", "RUNS_AS", "FUNCTION"], rows)
    print()
    print("Tables and views of schema public each role may use")
    rows = []
    for surface in roles:
        if not surface.exists:
            rows.append([surface.role, "(no such role in this database)", "", "", ""])
        elif not surface.relations:
            rows.append([surface.role, "(none)", "", "", ""])
        for relation in surface.relations:
            rows.append(
                [
                    surface.role,
                    f"public.{relation.name}",
                    relation.type,
                    "-" if relation.type != "table" else "on" if relation.rls else "off",
                    ", ".join(relation.privileges),
                ]
            )
    print_table(["ROLE", "RELATION", "TYPE", "RLS", "PRIVILEGES"], rows)


def _print_kinds(kinds: tuple[KindRules, ...]) -> None:
    print("Job kinds: shape and limits")
    print_table(
        ["KIND", "ENABLED", "MAX_BYTES", "MAX_DEPTH", "TARGET", "SHAPE"],
        [
            [
                k.kind,
                "yes" if k.enabled else "no",
                str(k.max_payload_bytes),
                str(k.max_depth),
                k.target or "-",
                ", ".join(k.shape) if k.shape is not None else "(none: fleet and operators only)",
            ]
            for k in kinds
        ],
    )
    print()
    print("Who may enqueue each kind (a level not listed may not)")
    rows = []
    for k in kinds:
        if not k.levels:
            rows.append([k.kind, "(none)", "", ""])
        for level in k.levels:
            rows.append([k.kind, level.level, _fields(level, k), f"{level.max_delay_seconds}s"])
    print_table(["KIND", "LEVEL", "FIELDS", "MAX_DELAY"], rows)
    print()
    print("Rate limits (new jobs; a repeated key is free)")
    print_table(
        ["KIND", "LEVEL", "PER_MINUTE", "PER_TARGET_PER_HOUR"],
        [
            [
                k.kind,
                level.level,
                _limit(level.rate_per_minute),
                _limit(level.target_rate_per_hour)
                + (f" (per {k.target})" if k.target and level.target_rate_per_hour else ""),
            ]
            for k in kinds
            for level in k.levels
        ],
    )


def cmd_report(args: argparse.Namespace) -> int:
    roles = tuple(dict.fromkeys(args.role)) if args.role else ROLES
    kinds = list(dict.fromkeys(args.kind)) if args.kind else None
    with open_connection() as conn:
        try:
            report = security_report(conn, roles=roles, kinds=kinds)
        except PolicyMissing as exc:
            raise CommandError(str(exc)) from None
        except LookupError as exc:
            raise CommandError(str(exc), exit_code=2) from None
        except psycopg.Error as exc:
            message = (exc.diag.message_primary if exc.diag else None) or str(exc)
            raise CommandError(f"cannot read the report: {' '.join(message.split())}") from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    _print_surface(report.roles)
    print()
    _print_kinds(report.kinds)
    return 0
