"""The public surface, as the database grants it: what each API and fleet role may call and
touch, and who may enqueue each job kind with which fields, limits and rates.

Read from the catalog (``has_function_privilege``, ``has_table_privilege``, ...) and from the
job-kind policy (``dragonfly.job_kinds``, ``dragonfly.job_kind_policies``), never from a list
kept here, so the report shows the database as it is, grants changed by hand included
(docs/security.md, "``dragonfly security report``").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

ROLES: tuple[str, ...] = (
    "anon",
    "authenticated",
    "service_role",
    "enforcement_operator",
    "dragonfly_worker",
)
"""The roles the report covers: the API's (PostgREST's), the operators' and the fleet's."""

LEVELS: tuple[str, ...] = ("internal", "operator", "public")

EXISTING_ROLES = "select rolname from pg_catalog.pg_roles where rolname = any (%s::text[])"

# Functions (and procedures, aggregates) in every schema the role may use, but the system's.
FUNCTIONS = """
select r.role, n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
       p.prosecdef
  from pg_catalog.unnest(%s::text[]) as r (role)
  join pg_catalog.pg_namespace as n on pg_catalog.has_schema_privilege(r.role, n.oid, 'USAGE')
  join pg_catalog.pg_proc as p on p.pronamespace = n.oid
 where n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
   and pg_catalog.has_function_privilege(r.role, p.oid, 'EXECUTE')
 order by 1, 2, 3, 4
"""

# Tables, views and materialized views of schema public; a right on some columns counts.
RELATIONS = """
select r.role, c.relname,
       case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                      when 'f' then 'foreign table' else 'table' end,
       c.relrowsecurity,
       pg_catalog.has_any_column_privilege(r.role, c.oid, 'SELECT'),
       pg_catalog.has_any_column_privilege(r.role, c.oid, 'INSERT'),
       pg_catalog.has_any_column_privilege(r.role, c.oid, 'UPDATE'),
       pg_catalog.has_table_privilege(r.role, c.oid, 'DELETE')
  from pg_catalog.unnest(%s::text[]) as r (role)
  join pg_catalog.pg_namespace as n on n.nspname = 'public'
       and pg_catalog.has_schema_privilege(r.role, n.oid, 'USAGE')
  join pg_catalog.pg_class as c on c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm', 'f')
 order by 1, 2
"""

KINDS = """
select kind, enabled, payload_fields, max_payload_bytes, max_depth
  from dragonfly.job_kinds
 order by kind
"""

LEVEL_ROWS = """
select kind, level, fields, max_delay_seconds, rate_per_minute, target_rate_per_hour
  from dragonfly.job_kind_policies
 order by kind, pg_catalog.array_position(array['internal', 'operator', 'public'], level)
"""

_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


class PolicyMissing(Exception):
    """The database has no job-kind policy (not migrated); the message is one line."""


@dataclass(frozen=True, slots=True)
class FunctionGrant:
    """A function a role may execute; ``definer``: it runs as its owner (SECURITY DEFINER)."""

    schema: str
    name: str
    arguments: str
    definer: bool

    @property
    def signature(self) -> str:
        return f"{self.schema}.{self.name}({self.arguments})"


@dataclass(frozen=True, slots=True)
class RelationGrant:
    """A table or view of schema public and what a role may do with it."""

    name: str
    type: str
    rls: bool
    privileges: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoleSurface:
    """One role's surface; ``exists`` False when this database has no such role."""

    role: str
    exists: bool
    functions: tuple[FunctionGrant, ...]
    relations: tuple[RelationGrant, ...]


@dataclass(frozen=True, slots=True)
class LevelRules:
    """One trust level's row of a kind's policy.

    ``fields`` None: every field of the shape. ``may_enqueue`` False: the row exists but
    queue_job() still refuses the level (a public row on a kind without a shape).
    """

    level: str
    fields: tuple[str, ...] | None
    max_delay_seconds: int
    rate_per_minute: int | None
    target_rate_per_hour: int | None
    may_enqueue: bool


@dataclass(frozen=True, slots=True)
class KindRules:
    """A job kind's shape and limits, and the levels that may enqueue it (no row: may not)."""

    kind: str
    enabled: bool
    shape: tuple[str, ...] | None
    target: str | None
    max_payload_bytes: int
    max_depth: int
    levels: tuple[LevelRules, ...]


@dataclass(frozen=True, slots=True)
class SecurityReport:
    roles: tuple[RoleSurface, ...]
    kinds: tuple[KindRules, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; each function also gets its ``signature``."""
        report = asdict(self)
        for role, surface in zip(report["roles"], self.roles, strict=True):
            for entry, grant in zip(role["functions"], surface.functions, strict=True):
                entry["signature"] = grant.signature
        return report


def role_surfaces(conn: psycopg.Connection[Any], roles: Sequence[str]) -> list[RoleSurface]:
    """What each of ``roles`` may execute anywhere and touch in schema public, in order."""
    existing = {str(r[0]) for r in conn.execute(EXISTING_ROLES, (list(roles),))}
    present = [r for r in roles if r in existing]
    functions: dict[str, list[FunctionGrant]] = {r: [] for r in present}
    for role, schema, name, arguments, definer in conn.execute(FUNCTIONS, (present,)):
        functions[role].append(FunctionGrant(schema, name, arguments, bool(definer)))
    relations: dict[str, list[RelationGrant]] = {r: [] for r in present}
    for role, name, type_, rls, *allowed in conn.execute(RELATIONS, (present,)):
        privileges = tuple(p for p, ok in zip(_PRIVILEGES, allowed, strict=True) if ok)
        if privileges:
            relations[role].append(RelationGrant(name, type_, bool(rls), privileges))
    return [
        RoleSurface(
            role,
            role in existing,
            tuple(functions.get(role, ())),
            tuple(relations.get(role, ())),
        )
        for role in roles
    ]


def kind_rules(conn: psycopg.Connection[Any]) -> list[KindRules]:
    """Every registered kind's shape, limits and policy rows, by kind name."""
    try:
        kinds = conn.execute(KINDS).fetchall()
        rows = conn.execute(LEVEL_ROWS).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        raise PolicyMissing(
            "the database has no job-kind policy (dragonfly.job_kind_policies);"
            " run `dragonfly db migrate` first"
        ) from None
    levels: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        levels.setdefault(str(row[0]), []).append(tuple(row[1:]))
    report = []
    for kind, enabled, shape, max_bytes, max_depth in kinds:
        fields = tuple(sorted(shape)) if isinstance(shape, dict) else None
        specs = shape.items() if isinstance(shape, dict) else ()
        targets = [f for f, spec in specs if isinstance(spec, dict) and spec.get("target")]
        report.append(
            KindRules(
                kind=str(kind),
                enabled=bool(enabled),
                shape=fields,
                target=min(targets, default=None),
                max_payload_bytes=int(max_bytes),
                max_depth=int(max_depth),
                levels=tuple(
                    LevelRules(
                        level=str(level),
                        fields=None if allowed is None else tuple(allowed),
                        max_delay_seconds=int(delay),
                        rate_per_minute=per_minute,
                        target_rate_per_hour=per_target,
                        may_enqueue=not (level == "public" and fields is None),
                    )
                    for level, allowed, delay, per_minute, per_target in levels.get(str(kind), [])
                ),
            )
        )
    return report


def security_report(
    conn: psycopg.Connection[Any],
    *,
    roles: Sequence[str] = ROLES,
    kinds: Sequence[str] | None = None,
) -> SecurityReport:
    """The report for ``roles`` and ``kinds`` (None: every registered kind).

    Raises :class:`PolicyMissing` on an unmigrated database and ``LookupError`` naming a
    kind that is not registered.
    """
    rules = kind_rules(conn)
    if kinds is not None:
        known = {k.kind for k in rules}
        unknown = [k for k in kinds if k not in known]
        if unknown:
            raise LookupError(
                f"no job kind {', '.join(unknown)} in dragonfly.job_kinds"
                f" (registered: {', '.join(sorted(known)) or 'none'})"
            )
        rules = [k for k in rules if k.kind in kinds]
    return SecurityReport(tuple(role_surfaces(conn, roles)), tuple(rules))
