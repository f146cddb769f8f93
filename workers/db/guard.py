"""The schema guard: compare a live database with the checked-in manifest.

The manifest (``sql/schema_manifest.json``) records what a migrated database must
contain, as flat *facts* — one readable key and value per table, column, view,
function, enum, domain, RLS switch, policy, grant and job queue — plus the names of
the retired RPCs that must not exist anywhere. ``dragonfly db guard`` collects the
same facts from the live database and reports every difference:

- ``missing``: in the manifest, not in the database (a dropped column, a revoked grant);
- ``changed``: present in both with another value (a type, a grant list, RLS off);
- ``unexpected``: in a tracked schema of the database but not in the manifest;
- ``retired``: a retired RPC exists.

``dragonfly db guard --write`` regenerates the manifest from the database
(``--scratch`` first migrates a throwaway database on the same server, so the
manifest reflects exactly the migrations in the checkout).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from workers.db.migrate import migrate

MANIFEST_VERSION = 1
RETIRED_FUNCTIONS = ("ack_job", "complete_plaintiff_call_task", "set_updated_at")
TRACKED_ROLES = (
    "anon",
    "authenticated",
    "authenticator",
    "dragonfly_worker",
    "enforcement_operator",
    "service_role",
)
# Schemas that belong to PostgreSQL, PGMQ or the platform (Supabase), not to the project.
PLATFORM_SCHEMAS = (
    "information_schema",
    "pg_catalog",
    "pgmq",
    "auth",
    "storage",
    "graphql",
    "graphql_public",
    "realtime",
    "_realtime",
    "supabase_functions",
    "supabase_migrations",
    "extensions",
    "vault",
    "net",
    "cron",
    "pgsodium",
    "pgsodium_masks",
    "pgbouncer",
    "_analytics",
    "tiger",
    "topology",
)

Facts = dict[str, str]


class GuardError(Exception):
    """The manifest cannot be read or written."""


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between the manifest and the database."""

    kind: str  # missing | changed | unexpected | retired
    key: str
    expected: str | None
    found: str | None

    def describe(self) -> str:
        if self.kind == "missing":
            return f"missing     {self.key}: {self.expected}"
        if self.kind == "unexpected":
            return f"unexpected  {self.key}: {self.found}"
        if self.kind == "retired":
            return f"retired     {self.key} exists; retired RPCs must not exist"
        return f"changed     {self.key}: expected {self.expected}; found {self.found}"


@dataclass(frozen=True, slots=True)
class Manifest:
    schemas: tuple[str, ...]
    retired_functions: tuple[str, ...]
    facts: Facts

    def to_json(self) -> str:
        document = {
            "version": MANIFEST_VERSION,
            "about": (
                "What a migrated database must contain, checked by `dragonfly db guard`. "
                "Regenerate with `dragonfly db guard --write --scratch`; never edit by hand."
            ),
            "schemas": list(self.schemas),
            "retired_functions": list(self.retired_functions),
            "facts": dict(sorted(self.facts.items())),
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Manifest:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GuardError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("version") != MANIFEST_VERSION:
            raise GuardError(f"{source} is not a version {MANIFEST_VERSION} schema manifest")
        schemas = document.get("schemas")
        retired = document.get("retired_functions")
        facts = document.get("facts")
        if (
            not isinstance(schemas, list)
            or not isinstance(retired, list)
            or not isinstance(facts, dict)
            or not all(isinstance(v, str) for v in facts.values())
        ):
            raise GuardError(f"{source}: schemas, retired_functions and facts are required")
        return cls(tuple(map(str, schemas)), tuple(map(str, retired)), dict(facts))


def default_manifest_path() -> Path:
    """sql/schema_manifest.json of the checkout, or the copy bundled in the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "sql" / "schema_manifest.json"
    if checkout.parent.is_dir():
        return checkout
    return Path(str(resources.files("workers") / "_sql" / "schema_manifest.json"))


def load_manifest(path: Path) -> Manifest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GuardError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    return Manifest.from_json(text, str(path))


def write_manifest(path: Path, manifest: Manifest) -> None:
    try:
        path.write_text(manifest.to_json(), encoding="utf-8")
    except OSError as exc:
        raise GuardError(f"cannot write manifest {path}: {exc.strerror or exc}") from None


# --- collecting facts ----------------------------------------------------------------------

_PROJECT_SCHEMAS = """
select n.nspname
  from pg_namespace n
 where n.nspname <> all (%(platform)s)
   and n.nspname !~ '^pg_'
   and not exists (
       select 1 from pg_depend d
        where d.classid = 'pg_namespace'::regclass and d.objid = n.oid and d.deptype = 'e')
 order by 1
"""

_SCHEMA_USAGE = """
select n.nspname, coalesce(string_agg(
           case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end,
           ',' order by case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end)
           filter (where a.privilege_type = 'USAGE'
                   and (a.grantee = 0 or a.grantee::regrole::text = any (%(roles)s))), '')
  from pg_namespace n
  left join lateral aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a on true
 where n.nspname = any (%(schemas)s)
 group by n.nspname
"""

_RELATIONS = """
select n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any (%(schemas)s)
   and c.relkind in ('r', 'p', 'v', 'm')
   and not exists (
       select 1 from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
"""

_COLUMNS = """
select n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
  from pg_attribute a
  join pg_class c on c.oid = a.attrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any (%(schemas)s)
   and c.relkind in ('r', 'p', 'v', 'm')
   and a.attnum > 0 and not a.attisdropped
 order by 1, 2, 3
"""

_TABLE_GRANTS = """
select n.nspname, c.relname,
       case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end,
       string_agg(a.privilege_type, ',' order by a.privilege_type)
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 where n.nspname = any (%(schemas)s)
   and c.relkind in ('r', 'p', 'v', 'm')
   and (a.grantee = 0 or a.grantee::regrole::text = any (%(roles)s))
 group by 1, 2, 3
"""

_POLICIES = """
select p.schemaname, p.tablename, p.policyname, p.permissive, p.cmd,
       array_to_string(array(select unnest(p.roles) order by 1), ',')
  from pg_policies p
 where p.schemaname = any (%(schemas)s)
"""

_FUNCTIONS = """
select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
       coalesce(pg_get_function_result(p.oid), ''), p.prokind, p.prosecdef,
       coalesce(array_to_string(p.proconfig, ' '), ''),
       coalesce((
           select string_agg(g, ',' order by g)
             from (
                 select distinct case when a.grantee = 0 then 'PUBLIC'
                                      else a.grantee::regrole::text end as g
                   from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                  where a.privilege_type = 'EXECUTE'
                    and (a.grantee = 0 or a.grantee::regrole::text = any (%(roles)s))
             ) as grantees
       ), '')
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = any (%(schemas)s)
   and p.prokind in ('f', 'p', 'w')
   and not exists (
       select 1 from pg_depend d
        where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
"""

_ENUMS = """
select n.nspname, t.typname, string_agg(e.enumlabel, ',' order by e.enumsortorder)
  from pg_type t
  join pg_namespace n on n.oid = t.typnamespace
  join pg_enum e on e.enumtypid = t.oid
 where n.nspname = any (%(schemas)s)
 group by 1, 2
"""

_DOMAINS = """
select n.nspname, t.typname, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
       coalesce((select string_agg(pg_get_constraintdef(c.oid), ' ' order by c.conname)
                   from pg_constraint c where c.contypid = t.oid), '')
  from pg_type t
  join pg_namespace n on n.oid = t.typnamespace
 where n.nspname = any (%(schemas)s) and t.typtype = 'd'
"""

_RETIRED = """
select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
 where p.proname = any (%(names)s)
   and n.nspname <> all (array['pg_catalog', 'information_schema'])
 order by 1
"""

_QUEUES = """
select queue_name from pgmq.meta order by 1
"""

_KIND = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}


def project_schemas(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    """Schemas the project owns: everything but PostgreSQL's, PGMQ's and the platform's."""
    rows = conn.execute(_PROJECT_SCHEMAS, {"platform": list(PLATFORM_SCHEMAS)}).fetchall()
    return tuple(str(r[0]) for r in rows)


def collect_facts(conn: psycopg.Connection[Any], schemas: tuple[str, ...]) -> Facts:
    """Every tracked fact of the live database, as ``{key: value}``.

    Runs with an empty search_path so every type and function name comes out
    schema-qualified, whatever the connection's own setting.
    """
    with conn.transaction():
        conn.execute("select set_config('search_path', '', true)")
        return _collect_facts(conn, schemas)


def _collect_facts(conn: psycopg.Connection[Any], schemas: tuple[str, ...]) -> Facts:
    params: dict[str, Any] = {"schemas": list(schemas), "roles": list(TRACKED_ROLES)}
    facts: Facts = {}
    for nsp, usage in conn.execute(_SCHEMA_USAGE, params).fetchall():
        facts[f"schema {nsp}"] = f"usage: {usage or '-'}"

    kinds: dict[tuple[str, str], str] = {}
    for nsp, rel, kind, rls, force in conn.execute(_RELATIONS, params).fetchall():
        kinds[(nsp, rel)] = kind
        label = _KIND[kind]
        if kind in ("r", "p"):
            facts[f"{label} {nsp}.{rel}"] = f"row level security {'on' if rls else 'off'}" + (
                ", forced" if force else ""
            )

    view_columns: dict[tuple[str, str], list[str]] = {}
    for nsp, rel, _num, col, typ, notnull in conn.execute(_COLUMNS, params).fetchall():
        kind = kinds.get((nsp, rel))
        if kind is None:
            continue
        if kind in ("v", "m"):
            view_columns.setdefault((nsp, rel), []).append(f"{col} {typ}")
        else:
            facts[f"column {nsp}.{rel}.{col}"] = typ + (" not null" if notnull else "")
    for (nsp, rel), cols in view_columns.items():
        facts[f"{_KIND[kinds[(nsp, rel)]]} {nsp}.{rel}"] = ", ".join(cols)

    for nsp, rel, role, privileges in conn.execute(_TABLE_GRANTS, params).fetchall():
        if (nsp, rel) in kinds:
            facts[f"grant on {nsp}.{rel} to {role}"] = privileges

    for nsp, table, name, permissive, cmd, roles in conn.execute(_POLICIES, params).fetchall():
        mode = "" if permissive == "PERMISSIVE" else "restrictive "
        facts[f'policy {nsp}.{table} "{name}"'] = f"{mode}{cmd} to {roles}"

    for nsp, name, args, result, kind, secdef, config, grantees in conn.execute(
        _FUNCTIONS, params
    ).fetchall():
        label = "procedure" if kind == "p" else "function"
        key = f"{label} {nsp}.{name}({args})"
        parts = [f"returns {result}" if result else "procedure"]
        parts.append("security definer" if secdef else "security invoker")
        if config:
            parts.append(config)
        facts[key] = "; ".join(parts)
        facts[f"execute on {nsp}.{name}({args})"] = grantees or "-"

    for nsp, name, labels in conn.execute(_ENUMS, params).fetchall():
        facts[f"enum {nsp}.{name}"] = labels

    for nsp, name, base, notnull, checks in conn.execute(_DOMAINS, params).fetchall():
        value = base + (" not null" if notnull else "") + (f" {checks}" if checks else "")
        facts[f"domain {nsp}.{name}"] = value

    has_pgmq = conn.execute("select to_regclass('pgmq.meta') is not null").fetchone()
    if has_pgmq and has_pgmq[0]:
        for (queue,) in conn.execute(_QUEUES).fetchall():
            facts[f"queue {queue}"] = "pgmq"
    return facts


def retired_present(conn: psycopg.Connection[Any], names: tuple[str, ...]) -> list[str]:
    rows = conn.execute(_RETIRED, {"names": list(names)}).fetchall()
    return [str(r[0]) for r in rows]


def build_manifest(conn: psycopg.Connection[Any]) -> Manifest:
    """The manifest of a database: its project schemas and all their facts."""
    schemas = project_schemas(conn)
    present = retired_present(conn, RETIRED_FUNCTIONS)
    if present:
        raise GuardError(
            "refusing to write a manifest from a database with retired RPCs: " + ", ".join(present)
        )
    return Manifest(schemas, RETIRED_FUNCTIONS, collect_facts(conn, schemas))


def check(conn: psycopg.Connection[Any], manifest: Manifest) -> list[Drift]:
    """Every difference between the manifest and the database, sorted by key."""
    live = collect_facts(conn, manifest.schemas)
    drift: list[Drift] = []
    for key, expected in manifest.facts.items():
        found = live.get(key)
        if found is None:
            drift.append(Drift("missing", key, expected, None))
        elif found != expected:
            drift.append(Drift("changed", key, expected, found))
    for key, found in live.items():
        if key not in manifest.facts:
            drift.append(Drift("unexpected", key, None, found))
    for signature in retired_present(conn, manifest.retired_functions):
        drift.append(Drift("retired", f"function {signature}", None, None))
    order = {"retired": 0, "missing": 1, "changed": 2, "unexpected": 3}
    return sorted(drift, key=lambda d: (order[d.kind], d.key))


# --- scratch database ------------------------------------------------------------------------


@contextmanager
def scratch_database(
    conn: psycopg.Connection[Any], url: str, migrations: Path
) -> Iterator[psycopg.Connection[Any]]:
    """A freshly migrated throwaway database on the server of ``conn``; dropped afterwards."""
    name = f"df_guard_{secrets.token_hex(6)}"
    conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        scratch_url = psycopg.conninfo.make_conninfo(url, dbname=name)
        with psycopg.connect(scratch_url, autocommit=True) as scratch:
            migrate(scratch, migrations)
            yield scratch
    finally:
        drop = sql.SQL("drop database if exists {} with (force)")
        conn.execute(drop.format(sql.Identifier(name)))
